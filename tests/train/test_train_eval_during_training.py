"""Evaluation during training (issue 18): every trainer scores ``eval_data`` with the model it trains,
logs the metrics (console, ``log_history``, TensorBoard, ``loss_curve.png``), and
``load_best_model_at_end`` leaves the best step's weights in ``output_dir``; every run draws its
loss curve, even one shorter than ``logging_steps``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kit import colbert as tc
from kit.train_data import SENTENCES
from safetensors.numpy import load_file

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.evaluation import evaluate_reranker, load_rerank_set
from rag_retrieval_train.cli import load_trainer, main
from rag_retrieval_train.colbert import ColBERTTrainingRun
from rag_retrieval_train.config import ConfigError, build_config
from rag_retrieval_train.embedding import EmbeddingTrainConfig, EmbeddingTrainingRun
from rag_retrieval_train.loss_curve import curve_points
from rag_retrieval_train.reranker import RerankerTrainConfig, RerankerTrainingRun
from rag_retrieval_train.trainer import TrainingRun

RUNS = {"reranker": RerankerTrainingRun, "embedding": EmbeddingTrainingRun, "colbert": ColBERTTrainingRun}
QUERIES = [(" ".join(s.split()[:4]).lower(), s) for s in SENTENCES[:6]]


def write_rerank_set(path: Path) -> Path:
    """Each query's own sentence (label 1) among three others (label 0)."""
    with open(path, "w", encoding="utf-8") as f:
        for i, (query, answer) in enumerate(QUERIES):
            others = [s for s in SENTENCES if s != answer][i : i + 3]
            candidates = [{"content": s, "label": 0} for s in others] + [{"content": answer, "label": 1}]
            f.write(json.dumps({"query": query, "candidates": candidates}) + "\n")
    return path


def write_beir(folder: Path) -> Path:
    """The sentences as a corpus; each query's relevant document is its own sentence."""
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for i, s in enumerate(SENTENCES):
            f.write(json.dumps({"_id": f"d{i}", "text": s}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for i, (query, _) in enumerate(QUERIES):
            f.write(json.dumps({"_id": f"q{i}", "text": query}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"q{i}\td{SENTENCES.index(answer)}\t1" for i, (_, answer) in enumerate(QUERIES)]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_misleading_train(path: Path, n: int = 16) -> Path:
    """Training groups whose "positive" is a wrong sentence and whose negatives include the right one:
    the eval metrics fall as training goes on, so the best step is an early one, not the last."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            query, answer = QUERIES[i % len(QUERIES)]
            wrong = [s for s in SENTENCES if s != answer]
            f.write(json.dumps({"query": query, "pos": [wrong[i % 7]], "neg": [answer, *wrong[8:11]]}) + "\n")
    return path


@pytest.fixture(scope="module")
def colbert_backbone(tmp_path_factory) -> Path:
    path = tc.build_tiny_colbert(tmp_path_factory.mktemp("eval-colbert") / "tiny-colbert")
    return path.with_name(path.name + "-backbone")


# (trainer, base-model fixture, extra keys, the set it evaluates on, its first metric)
CASES = [
    ("reranker", "bert_cross_encoder", {"loss": "listwise_ce", "train_group_size": 3}, "rerank", "MAP"),
    ("distill", "bert_cross_encoder", {"teacher_model": "BASE", "train_group_size": 3}, "rerank", "MAP"),
    ("embedding", "bi_encoder", {"train_group_size": 2}, "retrieval", "nDCG@10"),
    ("colbert", "colbert_backbone", {"dim": 8, "query_length": 10, "train_group_size": 2}, "retrieval", "nDCG@10"),
]


def _values(trainer: str, base: Path, tmp_path: Path, eval_kind: str, **extra) -> dict:
    eval_data = write_rerank_set(tmp_path / "eval.jsonl") if eval_kind == "rerank" else write_beir(tmp_path / "beir")
    values = {
        "model_name_or_path": str(base),
        "train_data": str(write_misleading_train(tmp_path / "train.jsonl")),
        "output_dir": str(tmp_path / "out"),
        "eval_data": str(eval_data),
        "batch_size": 4,
        "max_steps": 4,
        "logging_steps": 1,
        "learning_rate": 3e-2,
        "warmup_ratio": 0.0,
        "max_length": 32,
        "disable_progress_bar": True,
        **extra,
    }
    return {k: str(base) if v == "BASE" else v for k, v in values.items()}


def _train(trainer: str, values: dict) -> tuple[TrainingRun | None, Path]:
    """Run ``trainer`` on ``values``; the TrainingRun (its ``trainer.state``), except for distill."""
    config_cls, run_trainer = load_trainer(trainer)
    config = build_config(config_cls, values, {})
    if trainer == "distill":  # the teacher step, then the student's TrainingRun inside
        return None, Path(run_trainer(config))
    run = RUNS[trainer](config)
    return run, Path(run.run())


def _weights(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of the safetensors files in ``folder`` (not in its checkpoints), by file and name;
    a reranker checkpoint's ``model.`` prefix (the trainer's wrapper) is dropped."""
    tensors = {}
    for file in sorted(folder.rglob("*.safetensors")):
        relative = file.relative_to(folder)
        if relative.parts[0].startswith("checkpoint-"):
            continue
        for name, value in load_file(str(file)).items():
            tensors[f"{relative.parent}/{name.removeprefix('model.')}"] = value
    return tensors


def _trainer_state(out: Path, step: int) -> dict:
    return json.loads((out / f"checkpoint-{step}" / "trainer_state.json").read_text())


@pytest.mark.parametrize(("trainer", "base", "extra", "eval_kind", "metric"), CASES, ids=[c[0] for c in CASES])
def test_load_best_model_at_end_saves_the_best_evaluated_step(
    trainer, base, extra, eval_kind, metric, tmp_path, request, capsys
):
    values = _values(
        trainer,
        request.getfixturevalue(base),
        tmp_path,
        eval_kind,
        eval_steps=1,
        load_best_model_at_end=True,
        keep_checkpoints=True,
        save_total_limit=0,
        **extra,
    )
    _, out = _train(trainer, values)
    state = _trainer_state(out, 4)
    evaluations = [e for e in state["log_history"] if f"eval_{metric}" in e]
    assert [e["step"] for e in evaluations] == [1, 2, 3, 4], "evaluated every eval_steps"
    scores = [e[f"eval_{metric}"] for e in evaluations]
    best = 1 + int(np.argmax(scores))  # transformers keeps the first of equal bests
    assert state["best_global_step"] == best and state["best_metric"] == pytest.approx(max(scores))
    assert best != 4, f"the misleading data no longer makes an earlier step best: {scores}"

    final = _weights(out)
    best_weights, last_weights = _weights(out / f"checkpoint-{best}"), _weights(out / "checkpoint-4")
    shared = sorted(set(final) & set(best_weights))
    assert len(shared) == len(best_weights) > 0, "the checkpoint holds the saved model's tensors"
    for name in shared:
        np.testing.assert_array_equal(final[name], best_weights[name], err_msg=name)
    assert any(not np.array_equal(final[name], last_weights[name]) for name in shared), "the last step's weights"

    printed = capsys.readouterr().out + capsys.readouterr().err
    assert f"'eval_{metric}'" in printed, "the metrics are logged to the console"
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## Evaluation" in card and f"| best step | {best} by `{metric}`" in card
    assert f"| `{metric}` | {scores[best - 1]:.4f} |" in card, "the card reports the saved (best) step's metrics"


def test_the_reranker_saved_at_the_best_step_scores_the_logged_metric(bert_cross_encoder, tmp_path):
    """The metric logged for the best step is what rag-retrieval-eval measures on the saved folder:
    the evaluator scores with the model in memory exactly as Reranker(path) scores the checkpoint."""
    values = _values("reranker", bert_cross_encoder, tmp_path, "rerank", loss="listwise_ce", train_group_size=3)
    values.update(eval_steps=2, load_best_model_at_end=True, metric_for_best_model="mrr@10")
    run, out = _train("reranker", values)
    state = run.trainer.state
    assert state.best_global_step in (2, 4) and not list(out.glob("checkpoint-*")), "lean output kept"
    logged = next(e for e in state.log_history if e.get("step") == state.best_global_step and "eval_MAP" in e)
    measured = evaluate_reranker(Reranker(out), load_rerank_set(values["eval_data"]))
    for name in ("MAP", "MRR@10", "nDCG@10"):
        assert measured[name] == pytest.approx(logged[f"eval_{name}"], abs=1e-6), name
    assert state.best_metric == pytest.approx(measured["MRR@10"], abs=1e-6)


def test_eval_metrics_go_to_tensorboard_and_the_loss_curve(bi_encoder, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = _values("embedding", bi_encoder, tmp_path, "retrieval", eval_steps=3, report_to=["tensorboard"])
    run, out = _train("embedding", values)
    losses, metrics = curve_points(run.trainer.state.log_history)
    assert [s for s, _ in losses] == [1, 2, 3, 4]
    # every 3 steps, and the last step too (the curve ends where the saved model does)
    assert [s for s, _ in metrics["eval_nDCG@10"]] == [3, 4] and "eval_runtime" not in metrics
    assert {"eval_MRR@10", "eval_R@10", "eval_R@100"} <= set(metrics)
    assert (out / "loss_curve.png").stat().st_size > 0
    (events,) = {p.parent for p in (out / "runs").rglob("events.out.tfevents.*")}
    scalars = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert "eval/nDCG@10" in scalars and "train/loss" in scalars


def test_an_epoch_end_evaluation_by_default(bert_cross_encoder, tmp_path):
    """eval_steps 0 (the default) evaluates once per epoch (16 queries at batch 4: 4 steps), and
    load_best_model_at_end keeps the best of the epochs' checkpoints."""
    values = _values("reranker", bert_cross_encoder, tmp_path, "rerank", loss="listwise_ce", train_group_size=3)
    values.update(max_steps=-1, epochs=2, load_best_model_at_end=True, keep_checkpoints=True, save_total_limit=1)
    run, out = _train("reranker", values)
    state = run.trainer.state
    evaluated = {e["step"]: e["eval_MAP"] for e in state.log_history if "eval_MAP" in e}
    assert list(evaluated) == [4, 8]
    best = max(evaluated, key=lambda step: (evaluated[step], -step))
    assert state.best_global_step == best
    # save_total_limit: 1 keeps the best checkpoint, which the final folder equals
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{best}"]
    final, kept = _weights(out), _weights(out / f"checkpoint-{best}")
    assert all(np.array_equal(final[name], kept[name]) for name in kept)


def test_a_run_shorter_than_logging_steps_still_draws_its_loss_curve(bert_cross_encoder, tmp_path):
    values = _values("reranker", bert_cross_encoder, tmp_path, "rerank", loss="listwise_ce", train_group_size=3)
    values.update(eval_data="", max_steps=5, logging_steps=10)
    run, out = _train("reranker", values)
    losses, metrics = curve_points(run.trainer.state.log_history)
    assert [s for s, _ in losses] == [5] and not metrics
    assert (out / "loss_curve.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric_for_best_model": "accuracy"}, r"metric_for_best_model must be one of \['MAP', 'MRR@10', 'nDCG@10'\]"),
        ({"eval_data": "missing.jsonl"}, r"eval_data 'missing.jsonl' does not exist \(a reranking set"),
        ({"eval_data": "", "load_best_model_at_end": True}, "load_best_model_at_end needs eval_data"),
        ({"eval_data": "", "metric_for_best_model": "MAP"}, "metric_for_best_model needs eval_data"),
        ({"eval_steps": -1}, "eval_steps must be >= 0"),
        (
            {"load_best_model_at_end": True, "eval_steps": 2, "save_steps": 3},
            "save_steps=3 does not save a checkpoint at every evaluation",
        ),
        ({"load_best_model_at_end": True, "save_steps": 3}, "at the end of every epoch"),
    ],
)
def test_evaluation_keys_are_checked_when_the_config_is_built(changes, message, tmp_path):
    values = {
        "model_name_or_path": "m",
        "train_data": "t.jsonl",
        "output_dir": str(tmp_path / "out"),
        "eval_data": str(write_rerank_set(tmp_path / "eval.jsonl")),
        **changes,
    }
    with pytest.raises(ConfigError, match=message):
        build_config(RerankerTrainConfig, values, {})


def test_metric_names_are_matched_as_the_evaluator_names_them(tmp_path):
    values = {"model_name_or_path": "m", "train_data": "t", "output_dir": "o", "eval_data": str(tmp_path)}
    assert build_config(EmbeddingTrainConfig, values, {}).best_metric() == "nDCG@10"
    assert build_config(EmbeddingTrainConfig, {**values, "metric_for_best_model": "eval_r@100"}, {}).best_metric() == (
        "R@100"
    )
    with pytest.raises(ConfigError, match=r"one of \['nDCG@10', 'MRR@10', 'R@10', 'R@100'\], got 'MAP'"):
        build_config(EmbeddingTrainConfig, {**values, "metric_for_best_model": "MAP"}, {})


def test_a_malformed_eval_set_fails_before_training_with_its_file_and_line(bert_cross_encoder, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "candidates": [{"content": "d", "label": 1}]}\n{"query": "q2"}\n')
    values = _values("reranker", bert_cross_encoder, tmp_path, "rerank", loss="listwise_ce", train_group_size=3)
    values["eval_data"] = str(bad)
    argv = ["reranker"] + [
        t for k, v in values.items() for t in (f"--{k}", json.dumps(v) if not isinstance(v, str) else v)
    ]
    with pytest.raises(SystemExit):
        main(argv)
    assert f"{bad}:2:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "nothing was trained or written"
    distill = {**{k: v for k, v in values.items() if k != "loss"}, "teacher_model": values["model_name_or_path"]}
    argv = ["distill"] + [t for k, v in distill.items() for t in (f"--{k}", v if isinstance(v, str) else json.dumps(v))]
    with pytest.raises(SystemExit):
        main(argv)
    assert f"{bad}:2:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "the teacher scored nothing either"


@pytest.mark.parametrize("sharding", ["is_fsdp_enabled", "is_deepspeed_enabled"])
def test_evaluation_with_sharded_weights_is_refused_before_training(sharding):
    from types import SimpleNamespace

    from rag_retrieval_train.eval_during_training import check_unsharded

    trainer = SimpleNamespace(evaluator=object(), is_fsdp_enabled=False, is_deepspeed_enabled=False)
    check_unsharded(trainer)  # one process holds the whole model: evaluated
    setattr(trainer, sharding, True)
    with pytest.raises(ConfigError, match="DeepSpeed and FSDP shard"):
        check_unsharded(trainer)
    check_unsharded(SimpleNamespace(evaluator=None, is_fsdp_enabled=True, is_deepspeed_enabled=True))
