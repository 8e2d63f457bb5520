"""``rag-retrieval-eval pipeline``: a first stage (a retriever or a TREC run file) reranked, with the
reported metrics checked against ones computed by hand from the reranker's own scores."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("ir_measures")

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.evaluation import evaluate_pipeline, evaluate_run, load_retrieval_set, pipeline_eval
from rag_retrieval_integrations.evaluation.cli import main

DOCS = {
    "d1": "Paris is the capital of France.",
    "d2": "The giant panda is a bear native to China.",
    "d3": "Pandas eat bamboo almost all day.",
    "d4": "Mount Everest is the highest mountain above sea level.",
    "d5": "Red pandas live in the eastern Himalayas.",
    "d6": "The Nile is a long river in Africa.",
}
QUERIES = {"q1": "what is a panda?", "q2": "highest mountain", "q3": "a long river", "q-none": "unjudged"}
# q1: d2 (grade 2) and d5 (grade 1); q2: d4; q3: d6; q-none has no judgement (left out)
QRELS = [("q1", "d2", 2), ("q1", "d5", 1), ("q1", "d1", 0), ("q2", "d4", 1), ("q3", "d6", 1)]


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in DOCS.items())
    )
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items()))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in QRELS)
    )
    return folder


# q1: by score d1, d2, d3 | d5 (4th: below a depth of 3), listed out of order; q2: d1, d3, d6 (d4,
# relevant, never retrieved); q3: no line (no candidates); q-none: a left-out query, skipped
RUN_LINES = [
    "q1 Q0 d3 3 7.0 bm25",
    "q1 Q0 d1 1 9.0 bm25",
    "q1 Q0 d5 4 5.5 bm25",
    "q1 Q0 d2 2 8.0 bm25",
    "q2 Q0 d1 1 3.0 bm25",
    "q2 Q0 d3 2 2.0 bm25",
    "q2 Q0 d6 3 1.0 bm25",
    "q-none Q0 d1 1 1.0 bm25",
]
TOP3 = {"q1": ["d1", "d2", "d3"], "q2": ["d1", "d3", "d6"]}


def write_run(path: Path, lines: list[str] = RUN_LINES) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args: str) -> int:
    return main(["pipeline", *args, "--quiet"])


def read_rows(out: Path) -> list[dict]:
    assert (out / "eval_pipeline.md").read_text().startswith("| model | first_stage | family | first-stage R@")
    return json.loads((out / "eval_pipeline.json").read_text())


def reranked(model: Path, candidates: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each query's candidates in the order of the reranker's own pair scores, best first."""
    ranker = Reranker(model)
    out = {}
    for q, docs in candidates.items():
        scores = ranker.compute_score([(QUERIES[q], DOCS[d]) for d in docs])
        out[q] = [d for _, d in sorted(zip(scores, docs), key=lambda pair: -pair[0])]
    return out


def by_hand(order: dict[str, list[str]], k: int) -> dict[str, float]:
    """MRR@k, R@k and nDCG@k (linear gains, as trec_eval) over q1, q2, q3 (a query without a run scores 0)."""
    grades = {q: {d: g for qq, d, g in QRELS if qq == q} for q in ("q1", "q2", "q3")}
    mrr = recall = ndcg = 0.0
    for q, judged in grades.items():
        ranked = order.get(q, [])[:k]
        relevant = {d for d, g in judged.items() if g > 0}
        hits = [i for i, d in enumerate(ranked) if d in relevant]
        mrr += 1 / (hits[0] + 1) if hits else 0.0
        recall += len(hits) / len(relevant)
        dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(judged.values(), reverse=True)[:k]))
        ndcg += dcg / ideal
    return {f"MRR@{k}": mrr / 3, f"R@{k}": recall / 3, f"nDCG@{k}": ndcg / 3}


def test_run_file_first_stage_and_metrics_by_hand(bert_cross_encoder, tmp_path):
    data, run = write_beir(tmp_path / "beir"), write_run(tmp_path / "bm25.trec")
    out = tmp_path / "eval"
    metrics = ["nDCG@3", "MRR@3", "R@3"]
    assert run_cli("--data", str(data), "--run-file", str(run), "--model", str(bert_cross_encoder),
                   "--rerank-depth", "3", "--metrics", *metrics, "--output-dir", str(out)) == 0  # fmt: skip
    first, row = read_rows(out)
    # the first stage: q1 has d2 of {d2, d5} in its top 3, q2 misses d4, q3 has no candidates
    for r in (first, row):
        assert r["first-stage R@3"] == pytest.approx((1 / 2 + 0 + 0) / 3)
        assert r["queries"] == 3 and r["queries_without_relevant"] == 1 and r["queries_without_candidates"] == 1
        assert r["pairs"] == 6 and r["rerank_depth"] == 3 and r["retriever"] == "run-file"
    assert first["model"] == "(first stage)"
    for name, value in by_hand(TOP3, 3).items():  # the first stage's own order (by score)
        assert first[name] == pytest.approx(value), name
    # the reranked run holds only the top 3: d5 (4th by the first stage) is never found
    assert row["model"] == str(bert_cross_encoder)
    for name, value in by_hand(reranked(bert_cross_encoder, TOP3), 3).items():
        assert row[name] == pytest.approx(value), name


def test_retriever_first_stage_by_hand_and_compare_retrieves_once(
    bi_encoder, bert_cross_encoder, xlmr_cross_encoder, tmp_path, monkeypatch
):
    data_dir = write_beir(tmp_path / "beir")
    builds = []
    build_index = pipeline_eval.build_index
    monkeypatch.setattr(pipeline_eval, "build_index", lambda *a, **k: builds.append(a) or build_index(*a, **k))
    out = tmp_path / "eval"
    assert run_cli("--data", str(data_dir), "--first-stage", str(bi_encoder), "--model", str(bert_cross_encoder),
                   "--compare", str(xlmr_cross_encoder), "--rerank-depth", "4",
                   "--metrics", "nDCG@4", "MRR@4", "R@4", "--output-dir", str(out)) == 0  # fmt: skip
    assert len(builds) == 1  # one index, one candidate set, for both rerankers
    first, *rows = read_rows(out)
    assert [r["model"] for r in rows] == [str(bert_cross_encoder), str(xlmr_cross_encoder)]
    # the first stage by hand: cosine of the bi-encoder's vectors, the top 4 of the 6 documents
    data = load_retrieval_set(data_dir)
    model = Reranker(bi_encoder, "embedding")
    docs, queries = model.encode_documents(data.doc_texts), model.encode_queries(data.query_texts)
    sims = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        docs / np.linalg.norm(docs, axis=1, keepdims=True)
    ).T
    top4 = {q: [data.doc_ids[j] for j in np.argsort(-row, kind="stable")[:4]] for q, row in zip(data.query_ids, sims)}
    recall = by_hand(top4, 4)["R@4"]
    assert first["retriever"] == "embedding" and first["pairs"] == 12
    for name, value in by_hand(top4, 4).items():
        assert first[name] == pytest.approx(value, abs=1e-6), name
    for row, reranker in zip(rows, (bert_cross_encoder, xlmr_cross_encoder)):
        assert row["first-stage R@4"] == pytest.approx(recall) and row["first_stage"] == str(bi_encoder)
        for name, value in by_hand(reranked(reranker, top4), 4).items():
            assert row[name] == pytest.approx(value), (reranker.name, name)


def test_python_api_takes_loaded_rerankers_and_paths(bert_cross_encoder, tmp_path):
    data = load_retrieval_set(write_beir(tmp_path / "beir"))
    run = write_run(tmp_path / "bm25.trec")
    rows = evaluate_pipeline(
        data, [Reranker(bert_cross_encoder), str(bert_cross_encoder)], run_file=run, rerank_depth=3,
        metrics=["MRR@3"],
    )  # fmt: skip
    assert [r["model"] for r in rows] == ["(first stage)", str(bert_cross_encoder), str(bert_cross_encoder)]
    assert rows[1]["MRR@3"] == pytest.approx(rows[2]["MRR@3"])
    assert rows[1]["MRR@3"] == pytest.approx(by_hand(reranked(bert_cross_encoder, TOP3), 3)["MRR@3"])
    with pytest.raises(ValueError, match="not both and not neither"):
        evaluate_pipeline(data, [], rerank_depth=3, metrics=["MRR@3"])


@pytest.mark.parametrize(
    "lines, extra, message",
    [
        (RUN_LINES + ["q9 Q0 d1 1 1.0 x"], [], r"bm25\.trec:9: query id 'q9' is not a query of"),
        (RUN_LINES + ["q1 Q0 d77 5 1.0 x"], [], r"bm25\.trec:9: document id 'd77' is not in the corpus"),
        (RUN_LINES + ["q1 Q0 d1 5 1.0 x"], [], r"bm25\.trec:9: the pair \('q1', 'd1'\) is listed twice"),
        (["q1 Q0 d1 1 9.0"], [], r"bm25\.trec:1: expected 6 fields"),
        (["q1 Q0 d1 one 9.0 x"], [], r"bm25\.trec:1: rank must be an integer"),
        (["q1 Q0 d1 1 nan x"], [], r"bm25\.trec:1: score must be a finite number, got 'nan'"),
        (["q1 Q0 d1 1 -inf x"], [], r"bm25\.trec:1: score must be a finite number, got '-inf'"),
        (RUN_LINES, ["--model-type", "cross-encoder", "auto"], r"--model-type takes one value .* got 2"),
        (["q-none Q0 d1 1 1.0 x"], [], r"bm25\.trec: no candidates for any query of"),
        (RUN_LINES, ["--rerank-depth", "0"], r"--rerank-depth\) must be a whole number >= 1, got 0"),
        (RUN_LINES, ["--rerank-depth", "ten"], r"--rerank-depth must be a whole number >= 1, got 'ten'"),
        (RUN_LINES, ["--rerank-depth", "5"], r"rerank depth 5 is shallower than the metrics' deepest cutoff \(10\)"),
        (RUN_LINES, ["--option", "oops"], "--option takes key=value"),
    ],
)
def test_bad_input_is_a_one_line_error(bert_cross_encoder, tmp_path, capsys, lines, extra, message):
    data, run = write_beir(tmp_path / "beir"), write_run(tmp_path / "bm25.trec", lines)
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--data", str(data), "--run-file", str(run), "--model", str(bert_cross_encoder), *extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rag-retrieval-eval: error: ") and re.search(message, last), err


def test_a_cross_encoder_is_no_first_stage(bert_cross_encoder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--data", str(write_beir(tmp_path / "beir")), "--first-stage", str(bert_cross_encoder),
                "--model", str(bert_cross_encoder))  # fmt: skip
    assert exit_info.value.code == 2
    assert "'cross-encoder' checkpoint" in capsys.readouterr().err


def test_squad_with_a_run_file_and_max_queries(bert_cross_encoder, tmp_path):
    """SQuAD: paragraphs p0, p1 are the documents; a run line of a query past --max-queries is skipped."""
    squad = tmp_path / "squad.json"
    paragraphs = [
        {"context": DOCS["d2"], "qas": [{"id": "a", "question": "what is a panda?", "answers": []}]},
        {"context": DOCS["d4"], "qas": [{"id": "b", "question": "highest mountain", "answers": []}]},
    ]
    squad.write_text(json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": paragraphs}]}))
    run = write_run(tmp_path / "run.trec", ["a Q0 p1 1 2.0 x", "a Q0 p0 2 1.0 x", "b Q0 p0 1 1.0 x"])
    out = tmp_path / "eval"
    assert run_cli("--data", str(squad), "--run-file", str(run), "--model", str(bert_cross_encoder),
                   "--max-queries", "1", "--rerank-depth", "1", "--metrics", "MRR@1", "--output-dir", str(out)) == 0  # fmt: skip
    first, row = read_rows(out)
    # only "a" is evaluated; its top 1 is p1 (not relevant): nothing to rerank into first place
    assert first["queries"] == row["queries"] == 1 and first["pairs"] == 1
    assert first["first-stage R@1"] == 0.0 and first["MRR@1"] == 0.0 and row["MRR@1"] == 0.0


def test_bm25_first_stage_reranked(bert_cross_encoder, tmp_path):
    pytest.importorskip("bm25s")
    from rag_retrieval_integrations.core import BM25Index

    data_dir, out = write_beir(tmp_path / "beir"), tmp_path / "eval"
    assert run_cli("--data", str(data_dir), "--first-stage", "bm25", "--model", str(bert_cross_encoder),
                   "--rerank-depth", "4", "--metrics", "nDCG@4", "MRR@4", "R@4", "--output-dir", str(out)) == 0  # fmt: skip
    first, row = read_rows(out)
    assert first["retriever"] == "bm25" and row["first_stage"] == "bm25"
    data = load_retrieval_set(data_dir)
    bm25 = BM25Index()
    bm25.add(data.doc_texts, ids=data.doc_ids)
    found = dict(zip(data.query_ids, bm25.search_many(data.query_texts, k=4)))
    top4 = {q: [h.id for h in hits] for q, hits in found.items()}
    # the first stage's row: its run (scores, ties as trec_eval breaks them) measured as is
    want = evaluate_run({q: {h.id: h.score for h in hits} for q, hits in found.items()}, data.qrels, ["nDCG@4", "RR@4"])
    assert (first["nDCG@4"], first["MRR@4"]) == pytest.approx((want["nDCG@4"], want["RR@4"]))
    assert first["R@4"] == pytest.approx(by_hand(top4, 4)["R@4"])
    for name, value in by_hand(reranked(bert_cross_encoder, top4), 4).items():
        assert row[name] == pytest.approx(value), name
