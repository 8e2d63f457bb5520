"""Hard-negative mining (``rag-retrieval-train mine``, ``mine_hard_negatives``) on tiny offline models:
rank range, margin filters against a known false negative, dedup, sampling, rescoring, the trainers'
readers on the output, and bad input naming file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kit import colbert as tiny_colbert

from rag_retrieval_integrations import Reranker
from rag_retrieval_train.cli import main
from rag_retrieval_train.data import DataFormatError
from rag_retrieval_train.data.embedding_data import load_examples
from rag_retrieval_train.data.reranker_data import load_reranker_examples
from rag_retrieval_train.mining import load_corpus, mine_hard_negatives

QUERY = "what does the giant panda eat"
POS = "the giant panda eats bamboo in the forest"
NEAR_DUP = "the giant panda eats bamboo in the forest ."  # a false negative: scores about as the positive
OTHERS = [
    "paris is the capital of france",
    "the stock market fell on monday",
    "a recipe for tomato soup with basil",
    "the moon orbits the earth every month",
    "rain is expected over the weekend",
    "the library opens at nine in the morning",
    "pandas are bears native to china",
    "football is played with a round ball",
]
CORPUS = [NEAR_DUP, *OTHERS]


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model(bi_encoder):
    return Reranker(str(bi_encoder))


@pytest.fixture
def data(tmp_path) -> Path:
    return write(tmp_path / "train.jsonl", [{"query": QUERY, "pos": [POS]}])


def ranked_corpus(model, corpus=CORPUS) -> list[tuple[str, float]]:
    """The corpus ranked by the model's own scores (the reference the index must agree with)."""
    results = model.rank(QUERY, corpus)
    return [(corpus[r.index], r.score) for r in results]


def test_rank_range_is_respected(model, data):
    reference = [t for t, _ in ranked_corpus(model)]
    rows, stats = mine_hard_negatives(data, model, corpus=CORPUS, range_min=2, range_max=6, num_negatives=10)
    assert rows[0]["neg"] == reference[2:6]
    assert stats.short_lines == [1] and stats.negatives == 4


def test_near_duplicate_false_negative_is_excluded_by_margin_and_ratio(model, data):
    pos_score = model.compute_score([(QUERY, POS)])[0]
    scores = dict(ranked_corpus(model))
    unfiltered, _ = mine_hard_negatives(data, model, corpus=CORPUS, range_max=20, num_negatives=20)
    assert NEAR_DUP in unfiltered[0]["neg"]
    margin = max(pos_score - scores[NEAR_DUP], 0.0) + 1e-6  # the near-duplicate is within it of the positive
    rows, _ = mine_hard_negatives(data, model, corpus=CORPUS, range_max=20, num_negatives=20, margin=margin)
    assert NEAR_DUP not in rows[0]["neg"]
    assert rows[0]["neg"] == [t for t in unfiltered[0]["neg"] if scores[t] < pos_score - margin]
    assert pos_score > 0
    ratio = scores[NEAR_DUP] / pos_score - 1e-6
    rows, _ = mine_hard_negatives(data, model, corpus=CORPUS, range_max=20, num_negatives=20, max_score_ratio=ratio)
    assert NEAR_DUP not in rows[0]["neg"]
    assert rows[0]["neg"] == [t for t in unfiltered[0]["neg"] if scores[t] <= ratio * pos_score]


def test_dedup_positive_copies_and_repeats_never_kept(model, tmp_path):
    data = write(tmp_path / "d.jsonl", [{"query": QUERY, "pos": [POS, OTHERS[0]]}])
    corpus = [POS, f"  {POS}  ", OTHERS[0], OTHERS[1], OTHERS[1], OTHERS[2], OTHERS[2], OTHERS[3]]
    rows, stats = mine_hard_negatives(data, model, corpus=corpus, range_max=20, num_negatives=20)
    neg = rows[0]["neg"]
    assert len(neg) == len(set(neg)) and sorted(neg) == sorted(OTHERS[1:4])
    assert stats.corpus_size == 5  # repeats and the whitespace variant of the positive dropped


def test_default_corpus_is_every_positive_and_output_loads_in_both_trainers(model, tmp_path):
    lines = [{"query": f"query {i} about {t}", "pos": [t]} for i, t in enumerate(OTHERS)]
    out = tmp_path / "out" / "mined.jsonl"
    rows, stats = mine_hard_negatives(write(tmp_path / "d.jsonl", lines), model, output=out, num_negatives=3)
    assert stats.corpus_size == len(OTHERS) and stats.lines == len(OTHERS) and not stats.short_lines
    for row, line in zip(rows, lines):
        assert len(row["neg"]) == 3 and line["pos"][0] not in row["neg"] and set(row) == {"query", "pos", "neg"}
    emb = load_examples(out, cache_dir=tmp_path / "cache")
    assert emb["neg"] == [r["neg"] for r in rows] and emb["pos"] == [r["pos"] for r in rows]
    rer = load_reranker_examples(out, cache_dir=tmp_path / "cache")
    assert rer["labels"][0] == [1.0, 0.0, 0.0, 0.0] and rer["docs"][0] == rows[0]["pos"] + rows[0]["neg"]


def test_prompts_and_existing_negatives(model, tmp_path):
    lines = [{"query": QUERY, "pos": [POS], "neg": ["an old negative"], "prompt_for_query": "q: "}]
    out = tmp_path / "mined.jsonl"
    rows, _ = mine_hard_negatives(write(tmp_path / "d.jsonl", lines), model, corpus=OTHERS, output=out)
    assert rows[0]["prompt_for_query"] == "q: " and "an old negative" not in rows[0]["neg"]  # replaced, prompt kept
    assert load_examples(out, cache_dir=tmp_path / "cache")["prompt_for_query"] == ["q: "]


def test_random_sampling_is_seeded_and_within_the_range(model, data):
    reference = [t for t, _ in ranked_corpus(model)][1:8]
    runs = [mine_hard_negatives(data, model, corpus=CORPUS, range_min=1, range_max=8, num_negatives=3,
                                sampling="random", seed=s)[0][0]["neg"] for s in (0, 0, 1, 2, 3)]  # fmt: skip
    assert runs[0] == runs[1]
    assert all(len(r) == 3 and set(r) <= set(reference) for r in runs)
    assert len({tuple(r) for r in runs}) > 1


def test_rescore_model_filters_with_its_margin(model, data, bert_cross_encoder):
    scorer = Reranker(str(bert_cross_encoder))
    rows, _ = mine_hard_negatives(
        data, model, corpus=CORPUS, range_max=20, num_negatives=20, rescore_model=scorer, rescore_margin=-1e9
    )
    assert sorted(rows[0]["neg"]) == sorted(CORPUS)  # a margin that keeps everything
    pos_score = scorer.compute_score([(QUERY, POS)])[0]
    rescored = dict(zip(CORPUS, scorer.compute_score([(QUERY, d) for d in CORPUS])))
    rows, _ = mine_hard_negatives(data, model, corpus=CORPUS, range_max=20, num_negatives=20, rescore_model=scorer)
    assert set(rows[0]["neg"]) == {d for d, s in rescored.items() if s < pos_score}


def test_colbert_model_mines_through_the_colbert_index(tmp_path, data):
    colbert = Reranker(str(tiny_colbert.build_tiny_colbert(tmp_path / "colbert", dim=16, query_length=12)))
    reference = [t for t, _ in ranked_corpus(colbert)]
    rows, _ = mine_hard_negatives(data, colbert, corpus=CORPUS, range_min=1, range_max=4, num_negatives=5)
    assert rows[0]["neg"] == reference[1:4]


def test_corpus_files_jsonl_and_plain_text(tmp_path):
    assert load_corpus(write(tmp_path / "c.jsonl", [{"_id": "1", "text": "a"}, "", {"text": "b"}])) == ["a", "b"]
    assert load_corpus(write(tmp_path / "c.txt", ["a", "", "b c"])) == ["a", "b c"]
    with pytest.raises(DataFormatError, match=r"c2\.jsonl:2: .*'text'"):
        load_corpus(write(tmp_path / "c2.jsonl", [{"text": "a"}, {"text": 3}]))


def test_bad_input_names_file_and_line(model, tmp_path):
    data = write(tmp_path / "bad.jsonl", [{"query": "q", "pos": ["p"]}, {"query": "q2", "pos": []}])
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:2: this query has no positive"):
        mine_hard_negatives(data, model)
    data = write(tmp_path / "bad2.jsonl", [{"query": "q", "neg": ["n"]}])
    with pytest.raises(DataFormatError, match=r"bad2\.jsonl:1: this query has no positive"):
        mine_hard_negatives(data, model)
    with pytest.raises(ValueError, match="range_max"):
        mine_hard_negatives(data, model, range_min=5, range_max=5)


def test_cli_mine_writes_output_and_errors_on_one_line(bi_encoder, tmp_path, capsys):
    data = write(tmp_path / "d.jsonl", [{"query": QUERY, "pos": [POS]}])
    corpus = write(tmp_path / "corpus.txt", CORPUS)
    out = tmp_path / "mined.jsonl"
    argv = ["mine", "--data", str(data), "--model", str(bi_encoder), "--output", str(out), "--corpus", str(corpus)]
    assert main([*argv, "--num-negatives", "2", "--range-min", "1", "--margin", "0.0", "--no-progress"]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["pos"] == [POS] and len(row["neg"]) == 2 and POS not in row["neg"]
    assert "wrote 1 lines" in capsys.readouterr().out
    bad = write(tmp_path / "bad.jsonl", ["{not json"])
    with pytest.raises(SystemExit) as exit_info:
        main(["mine", "--data", str(bad), "--model", str(bi_encoder), "--output", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1: invalid JSON" in err and len(err.strip().splitlines()) == 1


def test_line_without_any_negative_is_left_out_unless_keep_empty(model, tmp_path):
    # the second line's only candidate is its own positive: nothing is left to mine for it
    lines = [{"query": QUERY, "pos": [POS]}, {"query": "what else?", "pos": CORPUS}]
    data, out = write(tmp_path / "d.jsonl", lines), tmp_path / "mined.jsonl"
    rows, stats = mine_hard_negatives(data, model, output=out, corpus=CORPUS, num_negatives=2)
    assert stats.empty_lines == [2] and 2 in stats.short_lines and [r["query"] for r in rows] == [QUERY]
    # what the embedding trainer with one hard negative per query reads (it refuses a line without neg)
    assert load_examples(out, cache_dir=tmp_path / "cache")["neg"] == [rows[0]["neg"]]
    kept, _ = mine_hard_negatives(data, model, corpus=CORPUS, num_negatives=2, keep_empty=True)
    assert [r["neg"] for r in kept][1] == [] and kept[0] == rows[0]


def test_a_tsv_corpus_is_read_by_its_header(model, tmp_path):
    """A BEIR-style id<TAB>text file: the header and the ids are no documents, so a query's own
    positive is not returned as its top negative."""
    corpus = write(tmp_path / "c.tsv", ["id\ttext", f"3\t{POS}", *(f"{i}\t{t}" for i, t in enumerate(OTHERS, 10))])
    assert load_corpus(corpus) == [POS, *OTHERS]
    rows, _ = mine_hard_negatives(write(tmp_path / "d.jsonl", [{"query": QUERY, "pos": [POS]}]), model, corpus=corpus)
    assert all(n in OTHERS for n in rows[0]["neg"])
    with pytest.raises(DataFormatError, match=r"bad\.tsv:1: .*'text' column"):
        load_corpus(write(tmp_path / "bad.tsv", ["a\tb", "1\tx"]))
    with pytest.raises(DataFormatError, match=r"bad2\.tsv:3: 1 columns, the header has 2"):
        load_corpus(write(tmp_path / "bad2.tsv", ["id\ttext", "1\tx", "2"]))


@pytest.mark.parametrize(
    "corpus, error, fragment",
    [
        (["", " ", "Berlin."], ValueError, r"corpus\[0\] is empty"),
        ([None, "a"], TypeError, r"corpus\[0\] must be a str, got NoneType"),
        ("Paris is the capital of France.", FileNotFoundError, "not an existing file.*list of texts"),
    ],
)
def test_a_bad_corpus_list_or_text_is_named(model, data, corpus, error, fragment):
    with pytest.raises(error, match=fragment):
        mine_hard_negatives(data, model, corpus=corpus)


@pytest.mark.parametrize("flag", ["--margin", "--max-score-ratio", "--rescore-margin"])
def test_nan_filters_are_one_line_errors(bi_encoder, tmp_path, capsys, flag):
    data = write(tmp_path / "d.jsonl", [{"query": QUERY, "pos": [POS]}])
    argv = ["mine", "--data", str(data), "--model", str(bi_encoder), "--output", str(tmp_path / "o.jsonl")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, flag, "nan"])
    assert exit_info.value.code == 2 and "must be a finite number, got nan" in capsys.readouterr().err


def test_the_output_never_overwrites_the_input_and_a_folder_output_leaves_nothing(model, tmp_path):
    lines = [{"query": QUERY, "pos": [POS]}, {"query": "what else?", "pos": CORPUS}]
    data = write(tmp_path / "d.jsonl", lines)
    before = data.read_text()
    with pytest.raises(ValueError, match="is the input file"):
        mine_hard_negatives(data, model, output=data, corpus=CORPUS)
    assert data.read_text() == before
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        mine_hard_negatives(data, model, output=tmp_path / "out", corpus=CORPUS)
    assert not (tmp_path / "out.tmp").exists()


def test_a_repeated_key_in_a_line_is_an_error_naming_the_line(model, tmp_path):
    data = tmp_path / "dup.jsonl"
    data.write_text('{"query": "a", "pos": ["p"]}\n{"query": "a", "query": "b", "pos": ["p"]}\n')
    with pytest.raises(DataFormatError, match=r"dup\.jsonl:2: the key 'query' appears twice"):
        mine_hard_negatives(data, model)


# ---- BM25 and hybrid first stages ----------------------------------------------------------------


def test_bm25_mines_the_lexical_ranking(data, tmp_path, capsys):
    pytest.importorskip("bm25s")
    from rag_retrieval_integrations.core import BM25Index

    bm25 = BM25Index()
    bm25.add([POS, *CORPUS])
    lexical = [h.text for h in bm25.search(QUERY, k=20) if h.text != POS]
    rows, stats = mine_hard_negatives(data, "bm25", corpus=[POS, *CORPUS], range_min=1, num_negatives=3)
    # only documents sharing a term are candidates: the near-duplicate (skipped by range_min) and the pandas
    assert rows[0]["neg"] == lexical[1:4] and lexical[0] == NEAR_DUP
    out = tmp_path / "mined.jsonl"
    corpus = write(tmp_path / "corpus.txt", CORPUS)
    argv = ["mine", "--data", str(data), "--model", "bm25", "--output", str(out), "--corpus", str(corpus)]
    assert main([*argv, "--num-negatives", "1", "--no-progress"]) == 0
    assert [json.loads(line)["neg"] for line in out.read_text().splitlines()] == [lexical[:1]]
    with pytest.raises(SystemExit):
        main([*argv, "--margin", "0.1"])
    assert "rescore_model" in capsys.readouterr().err


def test_hybrid_mines_the_fused_ranking(model, data):
    pytest.importorskip("bm25s")
    from rag_retrieval_integrations.core import BM25Index, HybridIndex, MRLIndex

    hybrid = HybridIndex({"bm25": BM25Index(), "dense": MRLIndex(model, search_dim=32)})
    hybrid.add(CORPUS)
    fused = [h.text for h in hybrid.search(QUERY, k=len(CORPUS))]
    rows, _ = mine_hard_negatives(data, model, corpus=CORPUS, retriever="hybrid", num_negatives=4)
    assert rows[0]["neg"] == fused[:4]
    with pytest.raises(ValueError, match="takes the model 'bm25'"):
        mine_hard_negatives(data, model, corpus=CORPUS, retriever="bm25")
    with pytest.raises(ValueError, match="retriever must be one of"):
        mine_hard_negatives(data, model, corpus=CORPUS, retriever="sparse")
