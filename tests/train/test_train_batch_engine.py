"""The trainers' corpus jobs on Ray Data (``engine="ray"``) write what the single-process path writes: the
teacher scores of ``distill`` and the lines of ``mine``. One local 2-CPU cluster (``ray_cluster``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from kit.checkpoints import CORPUS

from rag_retrieval_integrations import Reranker
from rag_retrieval_train.cli import main
from rag_retrieval_train.distill import score_with_teacher
from rag_retrieval_train.mining import mine_hard_negatives
from rag_retrieval_train.teacher_scores import scores_source_path

SENTENCES = list(dict.fromkeys(CORPUS))


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_distill_teacher_step_on_ray_writes_the_local_scores(ray_cluster, bert_cross_encoder, tmp_path):
    rows = [{"query": s[:18], "pos": [s], "neg": SENTENCES[i + 1 : i + 4]} for i, s in enumerate(SENTENCES[:9])]
    rows.append({"query": "capital of france", "content": SENTENCES[3], "label": 1})
    data = _write(tmp_path / "cands.jsonl", rows)
    local = score_with_teacher(Reranker(bert_cross_encoder), data, tmp_path / "local.jsonl", show_progress_bar=False)
    config = {
        "step": "teacher-scores",
        "engine": "ray",
        "engine_workers": 2,
        "teacher_model": str(bert_cross_encoder),
        "train_data": str(data),
        "teacher_scores": str(tmp_path / "ray.jsonl"),
        "disable_progress_bar": True,
    }
    (tmp_path / "distill.yaml").write_text(yaml.safe_dump(config))
    assert main(["distill", "--config", str(tmp_path / "distill.yaml")]) == 0
    a = [json.loads(line) for line in local.read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert len(a) == len(b) == 10

    def scores(line):
        return [h["score"] for h in line["hits"]] if "hits" in line else [line["score"]]

    def without_scores(line):
        hits = [{k: v for k, v in h.items() if k != "score"} for h in line.get("hits", [])]
        return {**{k: v for k, v in line.items() if k != "score"}, **({"hits": hits} if hits else {})}

    for x, y in zip(a, b):
        assert without_scores(y) == without_scores(x)  # the same layout, documents and labels
        np.testing.assert_allclose(scores(y), scores(x), atol=1e-5)
    # the same source record: a student step checks the scores against train_data either way
    recorded = json.loads(scores_source_path(tmp_path / "ray.jsonl").read_text())
    assert recorded == json.loads(scores_source_path(local).read_text())


def test_mining_on_ray_writes_the_local_lines(ray_cluster, bi_encoder, bert_cross_encoder, tmp_path):
    rows = [{"query": s[:16], "pos": [s]} for s in SENTENCES[:10]]
    data = _write(tmp_path / "train.jsonl", rows)
    options = {
        "range_max": 6,
        "num_negatives": 3,
        "sampling": "random",
        "seed": 3,
        "rescore_model": str(bert_cross_encoder),
    }
    local, local_stats = mine_hard_negatives(data, str(bi_encoder), corpus=SENTENCES, **options)
    out = tmp_path / "mined.jsonl"
    remote, stats = mine_hard_negatives(
        data, str(bi_encoder), corpus=SENTENCES, output=out, engine="ray", workers=2, rows_per_shard=4, **options
    )
    assert remote == local
    assert (stats.negatives, stats.short_lines, stats.empty_lines) == (
        local_stats.negatives,
        local_stats.short_lines,
        local_stats.empty_lines,
    )
    assert [json.loads(line) for line in out.read_text().splitlines()] == local
    assert not Path(f"{out}.work").exists()  # the default work folder goes once the output is written


def test_without_ray_the_cli_names_the_extra(bi_encoder, tmp_path, monkeypatch, capsys):
    data = _write(tmp_path / "train.jsonl", [{"query": "q", "pos": [SENTENCES[0]]}])
    monkeypatch.setitem(sys.modules, "ray", None)
    argv = ["mine", "--data", str(data), "--model", str(bi_encoder), "--output", str(tmp_path / "m.jsonl")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--engine", "ray"])
    assert exit_info.value.code == 2
    assert "pip install 'rag-retrieval[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "m.jsonl.work").exists()
