"""``rag-retrieval-eval retrieval``: metrics against hand-computed values, BEIR and SQuAD sets with
the embedding, ColBERT and MRL retrievers, results equal to brute force, and clear errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("ir_measures")

from kit import colbert as tc
from kit.checkpoints import CORPUS

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.evaluation import evaluate_run, load_retrieval_set
from rag_retrieval_integrations.evaluation.cli import main
from rag_retrieval_integrations.evaluation.retrieval_eval import build_index, retrieve

DOCS = list(dict.fromkeys(CORPUS))[:12]  # distinct texts
TITLED = {10: "Biology", 11: "Geography"}  # these documents get a title: their text is "title text"
HEADER = "query-id\tcorpus-id\tscore\n"


@pytest.fixture(scope="module")
def tiny_colbert(tmp_path_factory) -> Path:
    return tc.build_tiny_colbert(tmp_path_factory.mktemp("models") / "tiny-colbert")


def doc_text(i: int) -> str:
    return f"{TITLED[i]} {DOCS[i]}" if i in TITLED else DOCS[i]


def write_beir(folder: Path, *, qrels: str | None = None, corpus_lines: list[str] | None = None) -> Path:
    """12 documents; queries q0..q5 are exact copies of documents 0, 2, 4, 6, 8, 10 (their
    relevant one, title included); ``q-none`` has no judgement and ``q-zero`` only a 0."""
    folder.mkdir(parents=True, exist_ok=True)
    if corpus_lines is None:
        corpus_lines = [
            json.dumps({"_id": f"d{i}", "title": TITLED.get(i, ""), "text": text, "metadata": {}})
            for i, text in enumerate(DOCS)
        ]
    (folder / "corpus.jsonl").write_text("\n".join(corpus_lines) + "\n")
    queries = [{"_id": f"q{n}", "text": doc_text(i)} for n, i in enumerate(range(0, 12, 2))]
    queries += [{"_id": "q-none", "text": "an unjudged query"}, {"_id": "q-zero", "text": "only a 0 judgement"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels").mkdir(exist_ok=True)
    if qrels is None:
        rows = [f"q{n}\td{i}\t1" for n, i in enumerate(range(0, 12, 2))] + ["q0\td1\t0", "q-zero\td3\t0"]
        qrels = HEADER + "\n".join(rows) + "\n"
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


def write_squad(path: Path) -> Path:
    """Two articles, four paragraph entries of which one repeats a context: 3 documents, 5 questions."""
    paragraphs = [
        {
            "context": DOCS[0],
            "qas": [
                {"id": "a", "question": DOCS[0], "answers": []},
                {"id": "b", "question": "what do pandas eat?", "answers": []},
            ],
        },
        {"context": DOCS[3], "qas": [{"id": "c", "question": DOCS[3], "answers": []}]},
    ]
    second = [
        {"context": DOCS[5], "qas": [{"id": "d", "question": DOCS[5], "answers": []}]},
        {"context": DOCS[3], "qas": [{"id": "e", "question": "capital of France", "answers": []}]},
    ]
    squad = {
        "version": "1.1",
        "data": [{"title": "One", "paragraphs": paragraphs}, {"title": "Two", "paragraphs": second}],
    }
    path.write_text(json.dumps(squad, indent=1))
    return path


def run_cli(*args: str) -> int:
    return main(["retrieval", *args, "--quiet"])


def read_rows(out: Path) -> list[dict]:
    assert (out / "eval_retrieval.md").read_text().startswith("| model | retriever |")
    return json.loads((out / "eval_retrieval.json").read_text())


# ---- metrics -------------------------------------------------------------------------------------


def test_recall_ndcg_mrr_by_hand():
    run = {"q1": {f"d{i}": 12.0 - i for i in range(1, 13)}, "q2": {"a": 0.9, "b": 0.1}}
    qrels = {"q1": {"d3": 1, "d11": 1, "d99": 1}, "q2": {"a": 2, "b": 0}, "q3": {"x": 0}}
    # q1 ranks d1, d2, d3 ... d12: relevant at ranks 3 and 11, and d99 never retrieved.
    #   R@10 = 1/3, R@100 = 2/3, MRR@10 = 1/3,
    #   nDCG@10 = (1/log2(4)) / (1 + 1/log2(3) + 1/log2(4))  (three relevant: ideal ranks 1, 2, 3)
    # q2 ranks a (grade 2) first: everything is 1. q3 has no relevant document: left out.
    ndcg1 = (1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    scores = evaluate_run(run, qrels, ["R@10", "R@100", "MRR@10", "nDCG@10"])
    assert scores["queries"] == 2
    assert scores["R@10"] == pytest.approx((1 / 3 + 1) / 2)
    assert scores["R@100"] == pytest.approx((2 / 3 + 1) / 2)
    assert scores["MRR@10"] == pytest.approx((1 / 3 + 1) / 2)
    assert scores["nDCG@10"] == pytest.approx((ndcg1 + 1) / 2)


# ---- data ----------------------------------------------------------------------------------------


def test_beir_and_squad_sets_are_read_into_one_shape(tmp_path):
    beir = load_retrieval_set(write_beir(tmp_path / "beir"))
    assert beir.doc_ids == [f"d{i}" for i in range(12)] and beir.doc_texts[10] == f"Biology {DOCS[10]}"
    assert beir.query_ids == [f"q{n}" for n in range(6)] and beir.queries_without_relevant == 2
    assert beir.qrels["q0"] == {"d0": 1, "d1": 0}
    cut = load_retrieval_set(tmp_path / "beir", max_queries=4)
    assert cut.query_ids == ["q0", "q1", "q2", "q3"] and set(cut.qrels) == set(cut.query_ids) and cut.queries_cut == 2
    squad = load_retrieval_set(write_squad(tmp_path / "squad.json"))
    assert squad.doc_texts == [DOCS[0], DOCS[3], DOCS[5]]  # the repeated paragraph is one document
    assert squad.query_ids == ["a", "b", "c", "d", "e"]
    assert squad.qrels["e"] == squad.qrels["c"] == {squad.doc_ids[1]: 1}


# ---- the sub-command -----------------------------------------------------------------------------


def test_embedding_on_beir_ranks_each_exact_copy_first(bi_encoder, tmp_path, capsys):
    out = tmp_path / "eval"
    data = write_beir(tmp_path / "beir")
    assert run_cli("--data", str(data), "--model", str(bi_encoder), "--output-dir", str(out)) == 0
    (row,) = read_rows(out)
    assert row["retriever"] == "embedding"  # auto, for a sentence-transformers checkpoint
    assert row["queries"] == 6 and row["queries_without_relevant"] == 2 and row["documents"] == 12
    assert row["top_k"] == 100  # R@100's cutoff (the corpus has fewer documents)
    # every query is a copy of its one relevant document: cosine 1, ranked first
    assert row["MRR@10"] == pytest.approx(1.0) and row["R@10"] == pytest.approx(1.0)
    assert row["nDCG@10"] == pytest.approx(1.0)
    captured = capsys.readouterr()
    assert "| model | retriever | nDCG@10 | MRR@10 | R@10 | R@100 | queries | truncated |" in captured.out
    assert "2 without a relevant document left out" in captured.err


def test_mrl_on_squad_with_a_saved_index(bi_encoder, tmp_path):
    data, index = str(write_squad(tmp_path / "squad.json")), tmp_path / "index"
    args = [
        "--data",
        data,
        "--model",
        str(bi_encoder),
        "--retriever",
        "mrl",
        "--option",
        "shortlist_factor=2",
        "--option",
        "search_dim=8",
        "--metrics",
        "MRR@10",
        "R@1",
        "--index",
        str(index),
    ]
    assert run_cli(*args, "--output-dir", str(tmp_path / "built")) == 0
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["search_dim"] == 8 and manifest["search"]["shortlist_factor"] == 2  # the options reached MRLIndex
    assert run_cli(*args, "--output-dir", str(tmp_path / "loaded")) == 0  # the saved index, loaded
    (built,), (loaded,) = read_rows(tmp_path / "built"), read_rows(tmp_path / "loaded")
    assert built["retriever"] == "mrl" and built["documents"] == 3 and built["queries"] == 5
    assert built["top_k"] == 10
    # shortlist 2 * 3 >= 3 documents: the funnel is exact, so the copies "a", "c", "d" rank their paragraph first
    assert built["R@1"] >= 3 / 5
    assert {k: loaded[k] for k in ("MRR@10", "R@1")} == {k: built[k] for k in ("MRR@10", "R@1")}


def test_a_saved_index_must_fit_the_options_and_the_corpus(bi_encoder, tmp_path, capsys):
    index = tmp_path / "index"
    squad = str(write_squad(tmp_path / "squad.json"))
    assert (
        run_cli(
            "--data",
            squad,
            "--model",
            str(bi_encoder),
            "--retriever",
            "mrl",
            "--option",
            "search_dim=8",
            "--index",
            str(index),
        )
        == 0
    )
    for data, extra, message in [
        (squad, ["--option", "search_dim=16"], r"was built with \{'search_dim': 8\}"),
        (str(write_beir(tmp_path / "beir")), [], "does not hold this set's corpus"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            run_cli("--data", data, "--model", str(bi_encoder), "--retriever", "mrl", "--index", str(index), *extra)
        assert exit_info.value.code == 2
        assert re.search(message, capsys.readouterr().err.strip().splitlines()[-1])


def test_colbert_on_squad_and_beir(tiny_colbert, tmp_path):
    rows = []
    for data in (write_squad(tmp_path / "squad.json"), write_beir(tmp_path / "beir"), tmp_path / "squad.json"):
        out = tmp_path / f"eval-{len(rows)}"
        index = ["--index", str(tmp_path / "colbert-index")] if data.suffix == ".json" else []  # built, then loaded
        assert run_cli("--data", str(data), "--model", str(tiny_colbert), "--output-dir", str(out), *index) == 0
        (row,) = read_rows(out)
        assert row["retriever"] == "colbert"  # auto, for a ColBERT checkpoint
        assert all(0.0 <= row[m] <= 1.0 for m in ("nDCG@10", "MRR@10", "R@10", "R@100"))
        assert row["R@100"] == pytest.approx(1.0)  # the whole corpus is retrieved
        rows.append(row)
    assert (tmp_path / "colbert-index" / "token_vectors.npy").is_file()
    assert rows[2]["nDCG@10"] == pytest.approx(rows[0]["nDCG@10"], abs=1e-6)  # the loaded index ranks alike


def test_compare_runs_each_model_on_the_same_set(bi_encoder, tiny_colbert, tmp_path, capsys):
    out = tmp_path / "eval"
    code = run_cli(
        "--data",
        str(write_beir(tmp_path / "beir")),
        "--model",
        str(bi_encoder),
        "--compare",
        str(tiny_colbert),
        "--max-queries",
        "4",
        "--output-dir",
        str(out),
    )
    assert code == 0
    rows = read_rows(out)
    assert [(r["model"], r["retriever"], r["queries"]) for r in rows] == [
        (str(bi_encoder), "embedding", 4),
        (str(tiny_colbert), "colbert", 4),
    ]
    table = capsys.readouterr().out
    assert f"| {bi_encoder} | embedding |" in table and f"| {tiny_colbert} | colbert |" in table


def test_embedding_results_equal_brute_force_on_the_model_vectors(bi_encoder, tmp_path):
    data = load_retrieval_set(write_beir(tmp_path / "beir"))
    queries = data.query_texts + ["what is a panda?", "tallest mountain", "snakes"]
    hits = retrieve(build_index(bi_encoder, "embedding", data, show_progress=False), queries, 5)
    model = Reranker(bi_encoder, "embedding")
    docs = model.encode_documents(data.doc_texts)
    q = model.encode_queries(queries)
    sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (docs / np.linalg.norm(docs, axis=1, keepdims=True)).T
    for row, found in zip(sims, hits):
        best = np.argsort(-row, kind="stable")[:5]
        assert [h.id for h in found] == [data.doc_ids[j] for j in best]
        np.testing.assert_allclose([h.score for h in found], row[best], atol=1e-5)
    # and the score is the core's own: what Reranker.rank gives for the pair
    ranked = model.rank(queries[-1], data.doc_texts, top_k=1)[0]
    assert hits[-1][0].score == pytest.approx(ranked.score, abs=1e-5)


# ---- bad input: one line, exit status 2 ----------------------------------------------------------


def bad_corpus(folder: Path) -> Path:
    lines = [json.dumps({"_id": f"d{i}", "text": t}) for i, t in enumerate(DOCS)]
    lines[1] = '{"_id": "d1", "title": 3, "text": "x"}'
    return write_beir(folder, corpus_lines=lines)


@pytest.mark.parametrize(
    "make_data, extra, message",
    [
        (lambda p: write_beir(p, qrels=f"{HEADER}q0\td0\t0\n"), [], "no query has a relevant document"),
        (bad_corpus, [], r"corpus\.jsonl:2: 'title' must be a string"),
        (lambda p: write_beir(p, qrels=f"{HEADER}q0\td77\t1\n"), [], r"test\.tsv:2: corpus-id 'd77'"),
        (lambda p: write_beir(p), ["--split", "dev"], r"no qrels/dev\.tsv; --split can be one of \['test'\]"),
        (lambda p: write_beir(p), ["--option", "shortlist_factor=4"], "use --retriever mrl"),
        (lambda p: write_beir(p), ["--top-k", "10"], "shallower than the metrics' deepest cutoff"),
        (
            lambda p: write_squad(p.with_suffix(".json")),
            ["--retriever", "mrl", "--option", "index_type=bogus"],
            "index_type must be one of",
        ),
    ],
)
def test_bad_input_is_a_one_line_error(bi_encoder, tmp_path, capsys, make_data, extra, message):
    data = make_data(tmp_path / "set")
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--data", str(data), "--model", str(bi_encoder), *extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rag-retrieval-eval: error: ") and re.search(message, last), err


def test_malformed_squad_names_the_element(bi_encoder, tmp_path, capsys):
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "question": ""}]}]}]}))
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--data", str(path), "--model", str(bi_encoder))
    assert exit_info.value.code == 2
    assert "squad.json: data[0].paragraphs[0].qas[0].question must be a non-empty string" in capsys.readouterr().err


def test_missing_model_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--data", str(write_squad(tmp_path / "squad.json")), "--model", str(tmp_path / "nope"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nope" in err.strip().splitlines()[-1]


def test_a_cross_encoder_is_not_a_retriever(bert_cross_encoder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--data", str(write_squad(tmp_path / "squad.json")), "--model", str(bert_cross_encoder))
    assert exit_info.value.code == 2
    assert "'cross-encoder' checkpoint" in capsys.readouterr().err


def test_a_loaded_model_is_evaluated_as_its_checkpoint(bi_encoder, tiny_colbert, bert_cross_encoder, tmp_path):
    """A trainer evaluates the model it trains, in memory: the metrics equal the checkpoint's."""
    from rag_retrieval_integrations.evaluation import evaluate_retriever

    data = load_retrieval_set(write_beir(tmp_path / "beir"))
    for path in (bi_encoder, tiny_colbert):
        loaded = Reranker(path)
        from_memory = evaluate_retriever(loaded, data, show_progress=False)
        from_path = evaluate_retriever(path, data, show_progress=False)
        assert from_memory["retriever"] == from_path["retriever"] == loaded.model_type
        for metric in ("nDCG@10", "MRR@10", "R@10", "R@100"):
            assert from_memory[metric] == pytest.approx(from_path[metric], abs=1e-9), (path, metric)
        with pytest.raises(ValueError, match=r"\['max_length'\] only apply when loading the model from a path"):
            evaluate_retriever(loaded, data, options={"max_length": 64})
    with pytest.raises(ValueError, match="'cross-encoder' checkpoint, which scores pairs"):
        evaluate_retriever(Reranker(bert_cross_encoder), data)


# ---- BM25 and hybrid first stages ----------------------------------------------------------------


def test_bm25_and_hybrid_runs_equal_the_indexes_own_search(bi_encoder, tmp_path):
    pytest.importorskip("bm25s")
    from rag_retrieval_integrations.core import BM25Index, HybridIndex, MRLIndex

    folder = write_beir(tmp_path / "beir")
    data = load_retrieval_set(folder)
    out = tmp_path / "eval"
    options = ["--option", "fusion=minmax", "--option", "weights={bm25: 0.5, dense: 2}", "--option", "k1=1.2"]
    index_dir = tmp_path / "hybrid-index"
    assert (
        run_cli(
            "--data",
            str(folder),
            "--model",
            str(bi_encoder),
            "--retriever",
            "hybrid",
            *options,
            "--index",
            str(index_dir),
            "--output-dir",
            str(out / "hybrid"),
        )
        == 0
    )
    assert (
        run_cli("--data", str(folder), "--model", "bm25", "--option", "k1=1.2", "--output-dir", str(out / "bm25")) == 0
    )
    (hybrid_row,), (bm25_row,) = read_rows(out / "hybrid"), read_rows(out / "bm25")
    assert (hybrid_row["retriever"], bm25_row["retriever"]) == ("hybrid", "bm25")

    bm25 = BM25Index(k1=1.2)
    bm25.add(data.doc_texts, ids=data.doc_ids)
    dense = MRLIndex(Reranker(bi_encoder), search_dim=32, shortlist_factor=1)
    hybrid = HybridIndex(
        {"bm25": BM25Index(k1=1.2), "dense": dense}, fusion="minmax", weights={"bm25": 0.5, "dense": 2}
    )
    hybrid.add(data.doc_texts, ids=data.doc_ids)
    for index, row in ((bm25, bm25_row), (hybrid, hybrid_row)):
        hits = index.search_many(data.query_texts, k=12)
        run = {q: {h.id: h.score for h in found} for q, found in zip(data.query_ids, hits)}
        want = evaluate_run(run, data.qrels, ["nDCG@10", "RR@10", "R@10", "R@100"])
        assert [row[m] for m in ("nDCG@10", "MRR@10", "R@10", "R@100")] == pytest.approx(
            [want[m] for m in ("nDCG@10", "RR@10", "R@10", "R@100")]
        )
    # the saved hybrid index is loaded, and must have been built with the options asked for
    assert (
        run_cli(
            "--data",
            str(folder),
            "--model",
            str(bi_encoder),
            "--retriever",
            "hybrid",
            *options,
            "--index",
            str(index_dir),
            "--output-dir",
            str(out / "again"),
        )
        == 0
    )
    assert read_rows(out / "again")[0]["nDCG@10"] == pytest.approx(hybrid_row["nDCG@10"])
    with pytest.raises(ValueError, match=r"was built with \{'stemmer': 'english'\}"):
        build_index(str(bi_encoder), "hybrid", data, options={"stemmer": None}, index_dir=index_dir)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "bm25", "--retriever", "hybrid"], "bm25 retriever takes the model 'bm25'"),
        (["--model", "MODEL", "--retriever", "bm25"], "bm25 retriever takes the model 'bm25'"),
        (["--model", "bm25", "--option", "search_dim=8"], r"\['search_dim'\] are not BM25 settings"),
        (["--model", "bm25", "--option", "stemmer=klingon"], "not a Snowball language"),
    ],
)
def test_bm25_and_hybrid_errors_are_one_line(bi_encoder, tmp_path, capsys, extra, message):
    pytest.importorskip("bm25s")
    extra = [str(bi_encoder) if e == "MODEL" else e for e in extra]
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--data", str(write_beir(tmp_path / "beir")), *extra)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err.strip().splitlines()[-1])


def test_an_index_converted_to_the_qdrant_engine_evaluates_the_same(tiny_colbert, tmp_path):
    pytest.importorskip("qdrant_edge")
    from rag_retrieval_integrations.index_cli import main as index_cli

    squad = str(write_squad(tmp_path / "squad.json"))
    args = ["--data", squad, "--model", str(tiny_colbert), "--metrics", "nDCG@10", "MRR@10", "R@1"]
    assert run_cli(*args, "--index", str(tmp_path / "faiss"), "--output-dir", str(tmp_path / "faiss-run")) == 0
    assert (
        index_cli(["convert", str(tmp_path / "faiss"), str(tmp_path / "qdrant"), "--quiet", "--quantization", "int8"])
        == 0
    )
    assert (
        json.loads((tmp_path / "qdrant" / "manifest.json").read_text())["format"]
        == "rag-retrieval-qdrant-colbert-index"
    )
    assert run_cli(*args, "--index", str(tmp_path / "qdrant"), "--output-dir", str(tmp_path / "qdrant-run")) == 0
    (faiss_row,), (qdrant_row,) = read_rows(tmp_path / "faiss-run"), read_rows(tmp_path / "qdrant-run")
    assert {m: qdrant_row[m] for m in ("nDCG@10", "MRR@10", "R@1")} == pytest.approx(
        {m: faiss_row[m] for m in ("nDCG@10", "MRR@10", "R@1")}, abs=1e-6
    )
