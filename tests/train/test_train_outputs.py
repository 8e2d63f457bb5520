"""What a finished run leaves in ``output_dir`` (issue 18): the model, its metadata and its model
card only; checkpoints survive a run that did not finish, for resume (a killed run:
test_train_reliability.py); ``<trainer> --help`` lists the trainer's keys."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path

import pytest
import yaml
from kit import colbert as tc
from kit.train_data import common_options, write_grouped, write_triplets
from transformers import TrainerCallback

from rag_retrieval_train.cli import TRAINERS, load_trainer, main
from rag_retrieval_train.config import ConfigError, build_config
from rag_retrieval_train.embedding import EmbeddingTrainConfig, EmbeddingTrainingRun
from rag_retrieval_train.keys_doc import type_name

# what only resume needs: optimizer and scheduler states, RNG states, the trainer's state
RESUME_ONLY = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "rng_state.pth", "training_args.bin"}


def _run(trainer: str, base: Path, tmp_path: Path, **extra) -> tuple[Path, dict]:
    """A two-step run of ``trainer`` with a checkpoint every step and every other key at its default."""
    config_cls, run = load_trainer(trainer)
    data = write_triplets(tmp_path / "train.jsonl") if trainer in ("embedding", "colbert") else None
    values = {
        "model_name_or_path": str(base),
        "train_data": str(data or write_grouped(tmp_path / "train.jsonl")),
        "output_dir": str(tmp_path / "out"),
        "batch_size": 4,
        "max_steps": 2,
        "save_steps": 1,
        "logging_steps": 1,
        "max_length": 32,
        "disable_progress_bar": True,
        **({"train_group_size": 3} if trainer != "embedding" else {}),
        **extra,
    }
    config = build_config(config_cls, values, {})
    return Path(run(config)), values


@pytest.fixture(scope="module")
def colbert_backbone(tmp_path_factory) -> Path:
    path = tc.build_tiny_colbert(tmp_path_factory.mktemp("outputs-colbert") / "tiny-colbert")
    return path.with_name(path.name + "-backbone")


CASES = [
    # (trainer, base-model fixture, extra keys, saved model_type, a peer the card loads it with)
    ("embedding", "bi_encoder", {}, "embedding", "SentenceTransformer("),
    ("reranker", "bert_cross_encoder", {"loss": "listwise_ce"}, "cross-encoder", "FlagReranker("),
    ("reranker", "decoder_llm", {"loss": "listwise_ce", "max_length": 128}, "llm", "FlagLLMReranker("),
    ("distill", "bert_cross_encoder", {"teacher_model": "BASE"}, "cross-encoder", "CrossEncoder("),
    ("colbert", "colbert_backbone", {"dim": 8, "query_length": 10}, "colbert", "MultiVectorEncoder("),
]


def _card(out: Path) -> tuple[dict, str]:
    text = (out / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "a model card starts with its YAML front matter"
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


@pytest.mark.parametrize(("trainer", "base", "extra", "model_type", "peer"), CASES, ids=[c[3] for c in CASES])
def test_a_finished_run_leaves_the_model_its_metadata_and_card_only(
    trainer, base, extra, model_type, peer, tmp_path, request
):
    base_path = request.getfixturevalue(base)
    extra = {k: str(base_path) if v == "BASE" else v for k, v in extra.items()}
    out, values = _run(trainer, base_path, tmp_path, **extra)
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert not [p for p in left if p.startswith("checkpoint-")], left
    assert not [p for p in left if Path(p).name in RESUME_ONLY], left
    assert "runs" not in left, "the default report_to writes no TensorBoard logs"
    metadata = json.loads((out / "rag_retrieval.json").read_text())
    assert metadata["model_type"] == model_type and metadata["training"]["steps"] == 2

    header, body = _card(out)
    assert header["base_model"] == str(base_path)
    assert header["library_name"] in ("sentence-transformers", "transformers")
    assert header["pipeline_tag"] in ("sentence-similarity", "text-ranking")
    assert f"loss:{values.get('loss') or metadata['loss']}" in header["tags"]
    assert "license" not in header, "the tiny base models name no license"
    assert f"Reranker({json.dumps(str(out))})" in body and peer in body
    rows = 24 if trainer in ("embedding", "colbert") else 16
    assert f"| `train_data` | `{values['train_data']}` | {rows} |" in body
    assert re.search(r"\| steps \| 2 \|", body) and "| loss |" in body


def test_the_cards_code_runs(bi_encoder, bert_cross_encoder, tmp_path):
    """The card's snippets load the folder as written (ours, sentence-transformers, FlagEmbedding)."""
    for name, base, trainer in (("e", bi_encoder, "embedding"), ("c", bert_cross_encoder, "reranker")):
        (tmp_path / name).mkdir()
        out, _ = _run(trainer, base, tmp_path / name, **({"loss": "listwise_ce"} if trainer == "reranker" else {}))
        _, body = _card(out)
        blocks = re.findall(r"```python\n(.*?)```", body, flags=re.S)
        assert len(blocks) == 2
        for block in blocks:
            if "FlagReranker" in block:
                block = block.replace(f"FlagReranker({json.dumps(str(out))})", f'FlagReranker("{out}", devices="cpu")')
            exec(compile(block, f"{out}/README.md", "exec"), {})


def test_a_run_stopped_before_its_last_step_keeps_its_checkpoints(bi_encoder, tmp_path):
    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step >= 2

    class StoppedRun(EmbeddingTrainingRun):
        def callbacks(self):
            return [*super().callbacks(), StopAt()]

    options = common_options(bi_encoder, tmp_path, max_steps=4, save_steps=1)
    out = Path(StoppedRun(build_config(EmbeddingTrainConfig, options, {})).run())
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()


def test_resuming_a_finished_run_without_checkpoints_says_what_to_do(bi_encoder, tmp_path):
    options = common_options(bi_encoder, tmp_path, max_steps=2, save_steps=1)
    EmbeddingTrainingRun(build_config(EmbeddingTrainConfig, options, {})).run()
    with pytest.raises(ConfigError, match="finished run.*keep_checkpoints: true"):
        EmbeddingTrainingRun(build_config(EmbeddingTrainConfig, {**options, "resume": True, "max_steps": 3}, {})).run()


def test_keep_checkpoints_keeps_save_total_limit_of_them(bi_encoder, tmp_path):
    options = common_options(bi_encoder, tmp_path, max_steps=4, save_steps=1, save_total_limit=2, keep_checkpoints=True)
    out = Path(EmbeddingTrainingRun(build_config(EmbeddingTrainConfig, options, {})).run())
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    more = {**options, "resume": True, "max_steps": 5}
    EmbeddingTrainingRun(build_config(EmbeddingTrainConfig, more, {})).run()
    assert json.loads((out / "rag_retrieval.json").read_text())["training"]["steps"] == 5


def test_tensorboard_writes_under_output_dir_runs_when_asked(bi_encoder, tmp_path):
    pytest.importorskip("tensorboard")
    options = common_options(bi_encoder, tmp_path, max_steps=1, report_to=["tensorboard"])
    out = Path(EmbeddingTrainingRun(build_config(EmbeddingTrainConfig, options, {})).run())
    assert list((out / "runs").rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
def test_trainer_help_lists_every_key_with_type_default_and_description(trainer, capsys):
    assert main([trainer, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: rag-retrieval-train {trainer} ")
    config_cls, _ = load_trainer(trainer)
    hints = typing.get_type_hints(config_cls)
    for item in dataclasses.fields(config_cls):
        line = next((x for x in text.splitlines() if x.startswith(f"  --{item.name} (")), None)
        assert line is not None, f"--{item.name} missing from {trainer} --help"
        assert type_name(hints[item.name]) in line and "default: " in line
        doc = item.metadata["doc"]
        assert " ".join(doc.split()[:4]) in text
    assert "--keep_checkpoints (bool; default: false)" in text and "--config FILE" in text


def test_card_license_comes_from_the_base_models_own_card_only(tmp_path):
    from rag_retrieval_train.model_card import front_matter, usage

    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\nlanguage: en\n---\n# base\n")
    header = front_matter("cross-encoder", str(tmp_path), "bce", "reranker")
    assert header["license"] == "apache-2.0" and header["base_model"] == str(tmp_path)
    assert "license" not in front_matter("embedding", "org/not-local", "infonce", "embedding")
    # an unmerged LoRA adapter: only Reranker loads it (with its base model)
    assert "FlagLLMReranker" in usage("llm", "out") and "FlagLLMReranker" not in usage("llm", "out", peers=False)
