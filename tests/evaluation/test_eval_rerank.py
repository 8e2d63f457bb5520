"""``rag-retrieval-eval rerank``: metrics against hand-computed values, the CLI on tiny data,
and clear errors on bad input."""

from __future__ import annotations

import json

import pytest

from rag_retrieval_integrations.evaluation import evaluate_run, load_rerank_set
from rag_retrieval_integrations.evaluation.cli import main


def test_metrics_by_hand():
    run = {"q1": {"d1": 0.2, "d2": 0.9, "d3": 0.5}, "q2": {"a": 0.1, "b": 0.3}}
    qrels = {"q1": {"d1": 1, "d2": 0, "d3": 1}, "q2": {"a": 2, "b": 0}, "q3": {"x": 0}}
    # q1 ranks d2 (0), d3 (1), d1 (1): AP = (1/2 + 2/3) / 2, RR = 1/2,
    #   nDCG@10 = (1/log2(3) + 1/log2(4)) / (1 + 1/log2(3))
    # q2 ranks b (0), a (2): AP = 1/2, RR = 1/2, nDCG@10 = (3/log2(3)) / 3
    import math

    ndcg1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg2 = 1 / math.log2(3)
    scores = evaluate_run(run, qrels, ["MAP", "MRR@10", "nDCG@10"])
    assert scores["queries"] == 2  # q3 has no relevant document
    assert scores["MAP"] == pytest.approx(((0.5 + 2 / 3) / 2 + 0.5) / 2)
    assert scores["MRR@10"] == pytest.approx(0.5)
    assert scores["nDCG@10"] == pytest.approx((ndcg1 + ndcg2) / 2)
    assert evaluate_run({}, {"q": {"d": 1}})["MAP"] == 0.0, "a query missing from the run scores 0"


def write_set(tmp_path):
    rows = [
        {
            "query": "what is a panda?",
            "candidates": [
                {"content": "Paris is the capital of France.", "label": 0},
                {"content": "The giant panda is a bear native to China.", "label": 1},
            ],
        },
        {
            "query": "capital of france",
            "candidates": [
                {"content": "Paris is the capital and most populous city of France.", "label": 1},
                {"content": "Python is a programming language.", "label": 0},
            ],
        },
        {"query": "no answer here", "candidates": [{"content": "Pandas eat bamboo.", "label": 0}]},
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_compares_two_models_and_writes_json_and_markdown(bert_cross_encoder, bi_encoder, tmp_path, capsys):
    data = write_set(tmp_path)
    code = main(
        [
            "rerank",
            "--data",
            str(data),
            "--model",
            str(bert_cross_encoder),
            "--compare",
            str(bi_encoder),
            "--output-dir",
            str(tmp_path / "eval"),
            "--quiet",
            "--option",
            "max_length=64",
        ]
    )
    assert code == 0
    rows = json.loads((tmp_path / "eval" / "eval_rerank.json").read_text())
    assert [r["model"] for r in rows] == [str(bert_cross_encoder), str(bi_encoder)]
    for row in rows:
        assert row["queries"] == 2 and row["queries_without_relevant"] == 1
        assert 0.5 <= row["MAP"] <= 1.0  # two candidates, one relevant: AP is 1 or 1/2
    assert "| model | family | MAP | MRR@10 | nDCG@10 | queries | truncated |" in capsys.readouterr().out
    assert [r["family"] for r in rows] == ["cross-encoder", "embedding"]
    assert (tmp_path / "eval" / "eval_rerank.md").exists()


def test_wikiqa_tsv_groups_rows_by_question(tmp_path):
    tsv = tmp_path / "dev.tsv"
    tsv.write_text("question\tsentence\tlabel\nq1\ts1\t0\nq1\ts2\t1\nq2\ts3\t0\n")
    data = load_rerank_set(tsv)
    assert data.queries == ["q1", "q2"] and data.candidates[0] == ["s1", "s2"] and data.labels[0] == [0, 1]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"query": "q", "candidates": [{"content": "d", "label": 0}]}\n', "no query has a relevant candidate"),
        ('{"query": "q", "candidates": [{"content": "d", "label": 1}]}\n{"query": "q2"}\n', r"set\.jsonl:2: "),
        ('{"query": "q", "candidates": [{"content": "d", "label": -1}]}\n', r"set\.jsonl:1: .*integer >= 0"),
    ],
)
def test_bad_sets_are_one_line_errors(bert_cross_encoder, tmp_path, capsys, content, message):
    path = tmp_path / "set.jsonl"
    path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["rerank", "--data", str(path), "--model", str(bert_cross_encoder), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_missing_model_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["rerank", "--data", str(write_set(tmp_path)), "--model", str(tmp_path / "nope"), "--quiet"])
    assert exit_info.value.code == 2
    assert "nope" in capsys.readouterr().err


def test_model_type_applies_to_model_alone_and_compare_models_are_detected(bert_cross_encoder, bi_encoder, tmp_path):
    """--model-type embedding for a bi-encoder once forced embedding on every --compare model too,
    scoring a cross-encoder as a bi-encoder without a word."""
    data, out = write_set(tmp_path), tmp_path / "eval"
    argv = ["rerank", "--data", str(data), "--model", str(bi_encoder), "--compare", str(bert_cross_encoder)]
    assert main([*argv, "--model-type", "embedding", "--output-dir", str(out), "--quiet"]) == 0
    rows = json.loads((out / "eval_rerank.json").read_text())
    assert [r["family"] for r in rows] == ["embedding", "cross-encoder"]
    assert main([*argv, "--model-type", "auto", "cross-encoder", "--output-dir", str(out), "--quiet"]) == 0
    assert [r["family"] for r in json.loads((out / "eval_rerank.json").read_text())] == ["embedding", "cross-encoder"]
