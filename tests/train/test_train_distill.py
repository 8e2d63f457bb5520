"""``rag-retrieval-train distill``: teacher scoring (batched, resumable) and a student that
learns the teacher's ranking."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from kit import checkpoints
from kit.checkpoints import CORPUS

from rag_retrieval_integrations import Reranker
from rag_retrieval_train.cli import main
from rag_retrieval_train.config import ConfigError
from rag_retrieval_train.distill import DistillTrainConfig, run_distill, score_with_teacher

SENTENCES = list(dict.fromkeys(CORPUS))
WORDS = sorted({w.strip(".,?").lower() for s in SENTENCES for w in s.split()})


def groups(seed: int, n: int, size: int = 6) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        query = " ".join(rng.choice(WORDS, size=3, replace=False))
        docs = [SENTENCES[i] for i in rng.choice(len(SENTENCES), size=size, replace=False)]
        out.append({"query": query, "pos": docs[:1], "neg": docs[1:]})
    return out


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pairwise_agreement(student: list[float], teacher: list[float]) -> float:
    pairs = [(i, j) for i, j in combinations(range(len(teacher)), 2) if teacher[i] != teacher[j]]
    return float(np.mean([(student[i] - student[j]) * (teacher[i] - teacher[j]) > 0 for i, j in pairs]))


def agreement(student, teacher, held_out: list[dict]) -> float:
    values = []
    for row in held_out:
        docs = row["pos"] + row["neg"]
        pairs = [(row["query"], d) for d in docs]
        values.append(pairwise_agreement(student.compute_score(pairs), teacher.compute_score(pairs)))
    return float(np.mean(values))


def test_teacher_scores_are_the_teachers_and_keep_the_layout(bert_cross_encoder, tmp_path):
    rows = groups(0, 5) + [{"query": "capital of france", "content": SENTENCES[3], "label": 1}]
    source = write(tmp_path / "cands.jsonl", rows)
    teacher = Reranker(bert_cross_encoder)
    out = score_with_teacher(
        teacher, source, tmp_path / "scores.jsonl", batch_size=4, pairs_per_chunk=7, show_progress_bar=False
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6
    for row, line in zip(rows[:5], lines[:5]):
        docs = row["pos"] + row["neg"]
        assert [h["content"] for h in line["hits"]] == docs
        np.testing.assert_allclose(
            [h["score"] for h in line["hits"]], teacher.compute_score([(row["query"], d) for d in docs]), atol=1e-6
        )
        assert [h["label"] for h in line["hits"]] == [1.0] + [0.0] * 5
    assert set(lines[5]) == {"query", "content", "score", "label"}


def test_a_listwise_teacher_ranks_each_lines_candidates_as_their_own_list(decoder_llm, tmp_path):
    """The same query on two lines of one chunk: a listwise teacher's scores are reciprocal ranks within
    each line's group, as ``compute_score`` of that group alone gives them, not ranks among both groups."""
    rows = [{"query": "panda", "pos": SENTENCES[:1], "neg": SENTENCES[1:3]}]
    rows.append({"query": "panda", "pos": SENTENCES[3:4], "neg": SENTENCES[4:5]})
    source = write(tmp_path / "cands.jsonl", rows)
    teacher = Reranker(decoder_llm, model_type="llm-listwise", method="first", window_size=3)
    out = score_with_teacher(teacher, source, tmp_path / "scores.jsonl", show_progress_bar=False)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    for row, line in zip(rows, lines):
        alone = teacher.compute_score([(row["query"], d) for d in row["pos"] + row["neg"]])
        assert [h["score"] for h in line["hits"]] == alone
    assert sorted(h["score"] for h in lines[1]["hits"]) == [0.5, 1.0]


def test_teacher_scoring_resumes_after_an_interruption(bert_cross_encoder, tmp_path):
    source = write(tmp_path / "cands.jsonl", groups(1, 6))
    teacher = Reranker(bert_cross_encoder)
    full = score_with_teacher(teacher, source, tmp_path / "full.jsonl", show_progress_bar=False).read_text()
    partial = tmp_path / "partial.jsonl"
    lines = full.splitlines(keepends=True)
    partial.write_text("".join(lines[:2]) + lines[2][:15])  # killed while writing line 3

    calls = []
    original = teacher.score_many
    teacher.score_many = lambda queries, docs, **kw: calls.append(sum(map(len, docs))) or original(queries, docs, **kw)
    score_with_teacher(teacher, source, partial, show_progress_bar=False)
    assert sum(calls) == 4 * 6, "only the 4 unfinished lines are scored again"
    resumed = [json.loads(x) for x in partial.read_text().splitlines()]
    expected = [json.loads(x) for x in lines]
    assert [[h["content"] for h in r["hits"]] for r in resumed] == [[h["content"] for h in r["hits"]] for r in expected]
    np.testing.assert_allclose(
        [h["score"] for r in resumed for h in r["hits"]], [h["score"] for r in expected for h in r["hits"]], atol=1e-6
    )

    other = write(tmp_path / "other.jsonl", groups(2, 6))
    with pytest.raises(ValueError, match="holds another input's teacher scores"):
        score_with_teacher(teacher, other, partial, show_progress_bar=False)


def test_student_learns_the_teachers_ranking_on_held_out_groups(tmp_path):
    """A tiny student distilled from a tiny teacher (same architecture, another random init)
    agrees with the teacher's pairwise order on held-out queries far more than before."""
    teacher_path = checkpoints.build_bert_cross_encoder(tmp_path / "teacher", seed=3)
    _sharpen(teacher_path, 300.0)  # a random head scores within ~1e-3: make the teacher's preferences clear
    student_path = checkpoints.build_bert_cross_encoder(tmp_path / "student", seed=4)
    train_file = write(tmp_path / "train.jsonl", groups(10, 96))
    held_out = groups(99, 24)
    teacher = Reranker(teacher_path)
    before = agreement(Reranker(student_path), teacher, held_out)

    argv = [
        "distill",
        "--teacher_model",
        str(teacher_path),
        "--model_name_or_path",
        str(student_path),
        "--train_data",
        str(train_file),
        "--output_dir",
        str(tmp_path / "student-out"),
        "--loss",
        "distill_kl",
        "--train_group_size",
        "6",
        "--batch_size",
        "8",
        "--epochs",
        "4",
        "--learning_rate",
        "2e-3",
        "--report_to",
        "[]",
        "--disable_progress_bar",
        "--max_length",
        "64",
        "--logging_steps",
        "5",
    ]
    assert main(argv) == 0
    out = tmp_path / "student-out"
    assert (out / "teacher_scores.jsonl").exists()
    metadata = json.loads((out / "rag_retrieval.json").read_text())
    assert metadata["training"]["trainer"] == "distill" and metadata["teacher"]["model"] == str(teacher_path)
    after = agreement(Reranker(out), teacher, held_out)
    print(f"pairwise agreement {before:.3f} -> {after:.3f}")
    assert after >= before + 0.2, f"pairwise agreement with the teacher: {before:.3f} before, {after:.3f} after"
    assert after >= 0.75


def _sharpen(path: Path, factor: float) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        model.classifier.weight.mul_(factor)
    model.save_pretrained(path)


@pytest.mark.parametrize("loss", ["distill_mse", "margin_mse", "distill_kl_ce"])
def test_other_distillation_losses_run_from_teacher_scores(bert_cross_encoder, tmp_path, loss):
    source = write(tmp_path / "cands.jsonl", groups(5, 8))
    scores = score_with_teacher(Reranker(bert_cross_encoder), source, tmp_path / "t.jsonl", show_progress_bar=False)
    config = DistillTrainConfig(
        step="student",
        model_name_or_path=str(bert_cross_encoder),
        teacher_scores=str(scores),
        train_data=str(source),
        output_dir=str(tmp_path / "out"),
        loss=loss,
        train_group_size=4,
        max_steps=2,
        batch_size=4,
        report_to=[],
        disable_progress_bar=True,
        max_length=64,
    )
    out = run_distill(config)
    assert json.loads((Path(out) / "rag_retrieval.json").read_text())["loss"] == loss


def test_distill_config_errors():
    with pytest.raises(ConfigError, match="teacher_model is required for step=teacher-scores"):
        DistillTrainConfig(step="teacher-scores", train_data="x.jsonl").validate()
    with pytest.raises(ConfigError, match=r"label_weight must be in \[0, 1\], got -0.1"):
        DistillTrainConfig(
            model_name_or_path="m", train_data="x", output_dir="o", teacher_model="t", label_weight=-0.1
        ).validate()
    with pytest.raises(ConfigError, match="distill trains with one of"):
        DistillTrainConfig(
            model_name_or_path="m", train_data="x", output_dir="o", teacher_model="t", loss="bce"
        ).validate()


@pytest.mark.parametrize(
    ("shift", "loss", "warns"),
    [(6.0, "distill_mse", True), (0.0, "distill_mse", False), (6.0, "distill_kl", False)],
)
def test_distill_mse_warns_when_the_teachers_scores_saturate_its_sigmoid_targets(tmp_path, caplog, shift, loss, warns):
    from rag_retrieval_train.distill import warn_if_saturated_targets

    rng = np.random.default_rng(0)
    rows = [
        {"query": f"q{i}", "hits": [{"content": f"d{j}", "score": float(shift + rng.normal())} for j in range(4)]}
        for i in range(20)
    ]  # shift 6: a yes-token LLM's Yes logits (all far above 3); shift 0: a cross-encoder's centred logits
    path = write(tmp_path / "teacher.jsonl", rows)
    with caplog.at_level("WARNING", logger="rag_retrieval_train.distill"):
        share = warn_if_saturated_targets(path, loss)
    assert ("use distill_kl or margin_mse" in caplog.text) is warns
    assert (share > 0.5) is warns


def _distill_config(model, tmp_path, source, **overrides) -> DistillTrainConfig:
    values = {
        "model_name_or_path": str(model),
        "teacher_model": str(model),
        "train_data": str(source),
        "output_dir": str(tmp_path / "out"),
        "train_group_size": 4,
        "max_steps": 1,
        "batch_size": 4,
        "report_to": [],
        "disable_progress_bar": True,
        "max_length": 64,
    }
    return DistillTrainConfig(**{**values, **overrides})


def test_scores_of_another_input_are_never_reused_or_trained_on(bert_cross_encoder, tmp_path):
    """Stale teacher scores: an input edited in place (same length) once reused a complete scores file
    (only its last query was compared), and step=student trained on the old texts."""
    from rag_retrieval_train.data import DataFormatError

    source = write(tmp_path / "cands.jsonl", groups(7, 4))
    scores = tmp_path / "out" / "teacher_scores.jsonl"
    score_with_teacher(Reranker(bert_cross_encoder), source, scores, show_progress_bar=False)
    rows = groups(7, 4)
    rows[0]["pos"] = [SENTENCES[-1]]  # an edit that keeps the length and the last query
    write(source, rows)
    with pytest.raises(DataFormatError, match=r"teacher_scores\.jsonl: holds the teacher scores of another input"):
        run_distill(_distill_config(bert_cross_encoder, tmp_path, source))
    student = _distill_config(bert_cross_encoder, tmp_path, source, step="student", teacher_scores=str(scores))
    with pytest.raises(DataFormatError, match="cands.jsonl.*has other content now"):
        run_distill(student)


def test_distill_killed_in_the_teacher_pass_resumes_with_resume_true(bert_cross_encoder, tmp_path):
    source = write(tmp_path / "cands.jsonl", groups(8, 6))
    scores = tmp_path / "out" / "teacher_scores.jsonl"
    score_with_teacher(Reranker(bert_cross_encoder), source, scores, show_progress_bar=False)
    lines = scores.read_text().splitlines(keepends=True)
    scores.write_text("".join(lines[:2]) + lines[2][:10])  # killed while scoring line 3
    out = run_distill(_distill_config(bert_cross_encoder, tmp_path, source, resume=True))
    assert json.loads((Path(out) / "rag_retrieval.json").read_text())["training"]["steps"] == 1
    resumed, expected = ([json.loads(x)["hits"] for x in text] for text in (scores.read_text().splitlines(), lines))
    assert [[h["content"] for h in r] for r in resumed] == [[h["content"] for h in r] for r in expected]
    np.testing.assert_allclose(
        [h["score"] for r in resumed for h in r], [h["score"] for r in expected for h in r], atol=1e-6
    )
