"""Training reliability: whose output_dir it is, which checkpoint resume takes, a data cache that
sees edits, config ranges checked before any model loads, and one-line CLI errors (issue 14)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kit.train_data import common_options, write_triplets

from rag_retrieval_train.cli import main
from rag_retrieval_train.config import RESOLVED_CONFIG_FILE, ConfigError, build_config
from rag_retrieval_train.data import load_examples
from rag_retrieval_train.embedding import EmbeddingTrainConfig, EmbeddingTrainingRun
from rag_retrieval_train.reranker import RerankerTrainConfig

REQUIRED = {"model_name_or_path": "m", "train_data": "d.jsonl", "output_dir": "out"}


def train(options: dict, run_class: type = EmbeddingTrainingRun) -> Path:
    return Path(run_class(build_config(EmbeddingTrainConfig, options, {})).run())


def fake_earlier_run(folder: Path, step: int = 50, trainer: str = "reranker") -> Path:
    """What an earlier, other run leaves: its config, a complete checkpoint and a model file."""
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    (folder / RESOLVED_CONFIG_FILE).write_text(yaml.safe_dump({"trainer": trainer, **REQUIRED}))
    (folder / "modules.json").write_text("[]")
    return checkpoint


# --------------------------------------------------------------------------------------------
# 4. output_dir: another run's folder is refused; resume checks the saved config


def test_a_new_run_refuses_a_folder_holding_an_earlier_run(bi_encoder, tmp_path):
    options = common_options(bi_encoder, tmp_path, max_steps=1)
    earlier = fake_earlier_run(Path(options["output_dir"]))
    with pytest.raises(ConfigError) as excinfo:
        train(options)
    message = str(excinfo.value)
    assert options["output_dir"] in message and "checkpoint-50" in message
    assert "overwrite_output_dir: true" in message and "resume: true" in message
    assert (earlier / "trainer_state.json").is_file(), "the earlier run's checkpoint must be left alone"


def test_overwrite_output_dir_replaces_the_earlier_run(bi_encoder, tmp_path):
    options = common_options(
        bi_encoder, tmp_path, max_steps=2, save_steps=2, overwrite_output_dir=True, keep_checkpoints=True
    )
    out = Path(options["output_dir"])
    fake_earlier_run(out)
    train(options)
    assert not (out / "checkpoint-50").exists() and (out / "checkpoint-2" / "trainer_state.json").is_file()
    assert yaml.safe_load((out / RESOLVED_CONFIG_FILE).read_text())["trainer"] == "embedding"
    # and now resume continues this run, not the deleted one
    resumed = train({**options, "overwrite_output_dir": False, "resume": True, "max_steps": 3})
    assert json.loads((resumed / "rag_retrieval.json").read_text())["training"]["steps"] == 3


def test_overwrite_and_resume_true_exclude_each_other():
    with pytest.raises(ConfigError, match="overwrite_output_dir: true.*resume: true"):
        build_config(EmbeddingTrainConfig, {**REQUIRED, "overwrite_output_dir": True, "resume": True}, {})


def test_resume_refuses_another_runs_checkpoints_naming_the_keys(bi_encoder, tmp_path):
    options = common_options(bi_encoder, tmp_path, max_steps=2, save_steps=2, keep_checkpoints=True)
    out = train(options)
    changed = {**options, "resume": True, "learning_rate": 5e-4, "seed": 7}
    with pytest.raises(ConfigError) as excinfo:
        train(changed)
    message = str(excinfo.value)
    assert "learning_rate" in message and "0.001" in message and "0.0005" in message
    assert "seed" in message and "42" in message and "7" in message and str(out) in message
    # what does not change the result may differ, and max_steps may be raised to train on
    more = {**options, "resume": True, "max_steps": 3, "logging_steps": 2, "save_steps": 1}
    assert json.loads((train(more) / "rag_retrieval.json").read_text())["training"]["steps"] == 3


def test_a_killed_run_resumes_its_own_checkpoints(bi_encoder, tmp_path):
    """The config is saved before the first step, so a run killed before its end is resumable; its
    checkpoints stay until the resumed run finishes."""
    from transformers import TrainerCallback

    class Killed(Exception):
        pass

    class KillAfter(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Killed

    class KilledRun(EmbeddingTrainingRun):
        def callbacks(self):
            return [*super().callbacks(), KillAfter()]

    options = common_options(bi_encoder, tmp_path, max_steps=3, save_steps=2)
    with pytest.raises(Killed):
        train(options, KilledRun)
    out = Path(options["output_dir"])
    assert (out / "checkpoint-2").is_dir() and not (out / "rag_retrieval.json").exists()
    # a run that did not finish keeps its checkpoints (optimizer state included) and writes no card
    assert (out / "checkpoint-2" / "optimizer.pt").is_file() and not (out / "README.md").exists()
    train({**options, "resume": True})
    assert json.loads((out / "rag_retrieval.json").read_text())["training"]["steps"] == 3
    assert not list(out.glob("checkpoint-*")), "finished now: its checkpoints go (keep_checkpoints: false)"


# --------------------------------------------------------------------------------------------
# 5. a checkpoint whose save was interrupted is skipped


def test_resume_skips_an_incomplete_checkpoint(bi_encoder, tmp_path, caplog):
    options = common_options(bi_encoder, tmp_path, max_steps=4, save_steps=2, save_total_limit=3, keep_checkpoints=True)
    out = train(options)
    torn = out / "checkpoint-6"  # killed while saving: weights half written, no trainer_state.json
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\0" * 100)
    with caplog.at_level(logging.WARNING, logger="rag_retrieval_train"):
        train({**options, "resume": True, "max_steps": 5})
    assert json.loads((out / "rag_retrieval.json").read_text())["training"]["steps"] == 5
    skipped = [r.getMessage() for r in caplog.records if "checkpoint-6" in r.getMessage()]
    assert skipped and "trainer_state.json" in skipped[0] and "checkpoint-4" in skipped[0]


# --------------------------------------------------------------------------------------------
# 7. the data cache is keyed on the file's content


def test_data_cache_sees_a_same_size_edit_that_kept_the_mtime(tmp_path):
    path = tmp_path / "train.jsonl"
    row = {"query": "what is a panda?", "pos": ["The giant panda is a bear."], "neg": ["Paris is in France."]}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    first = load_examples(path, cache_dir=tmp_path / "cache")
    assert first[0]["query"] == "what is a panda?"
    before = path.stat()
    path.write_text(json.dumps({**row, "query": "what is a koala?"}) + "\n", encoding="utf-8")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or `rsync -t` leave it
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert load_examples(path, cache_dir=tmp_path / "cache")[0]["query"] == "what is a koala?"


# --------------------------------------------------------------------------------------------
# 8. ratios and rates are range-checked when the config is built


@pytest.mark.parametrize(
    "config_class, key, value",
    [
        (EmbeddingTrainConfig, "warmup_ratio", 1.0),
        (EmbeddingTrainConfig, "warmup_ratio", 5),
        (EmbeddingTrainConfig, "warmup_ratio", -0.1),
        (EmbeddingTrainConfig, "learning_rate", 0),
        (EmbeddingTrainConfig, "learning_rate", -1e-5),
        (EmbeddingTrainConfig, "learning_rate", float("nan")),
        (EmbeddingTrainConfig, "weight_decay", -0.01),
        (EmbeddingTrainConfig, "max_grad_norm", -1.0),
        (EmbeddingTrainConfig, "lora_dropout", 1.0),
        (EmbeddingTrainConfig, "temperature", 0.0),
        (EmbeddingTrainConfig, "save_steps", -5),
        (RerankerTrainConfig, "lora_dropout", -0.5),
        (RerankerTrainConfig, "temperature", -1.0),
    ],
)
def test_out_of_range_values_name_the_key_and_value(config_class, key, value):
    with pytest.raises(ConfigError, match=rf"\b{key}\b.*{value!r}|{value!r}.*\b{key}\b"):
        build_config(config_class, REQUIRED, {key: value})  # the model "m" does not exist: nothing is loaded


def test_edge_values_in_range_are_accepted():
    config = build_config(EmbeddingTrainConfig, REQUIRED, {"warmup_ratio": 0.99, "weight_decay": 0.0})
    assert config.warmup_ratio == 0.99
    build_config(EmbeddingTrainConfig, REQUIRED, {"warmup_ratio": 0.0, "max_grad_norm": 0.0, "lora_dropout": 0.0})


# --------------------------------------------------------------------------------------------
# 9. user errors: one line on stderr, exit status 2; --debug shows the traceback


def _cli_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rag-retrieval-train: error: ")
    return lines[0]


def _flags(options: dict) -> list[str]:
    return [f"--{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in options.items()]


def test_invalid_yaml_is_one_line_naming_file_and_line(tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text("model_name_or_path: m\ntrain_data: [unclosed\noutput_dir: out\n")
    line = _cli_error(["embedding", "--config", str(config)], capsys)
    assert f"{config}:" in line and "YAML" in line


def test_negative_learning_rate_is_one_line_naming_the_key(tmp_path, capsys):
    line = _cli_error(["embedding", *_flags(REQUIRED), "--learning_rate", "-1e-5"], capsys)
    assert "learning_rate" in line and "-1e-05" in line
    line = _cli_error(["embedding", *_flags(REQUIRED), "--batch_sise", "3"], capsys)  # argparse-style too
    assert "unknown key 'batch_sise'" in line


def test_missing_model_is_one_line_naming_the_key(tmp_path, capsys):
    options = {**REQUIRED, "model_name_or_path": str(tmp_path / "no-such-model"), "output_dir": str(tmp_path / "o")}
    line = _cli_error(["embedding", *_flags(options)], capsys)
    assert "model_name_or_path" in line and "no-such-model" in line


def test_bad_data_line_is_one_line_naming_file_and_line(bi_encoder, tmp_path, capsys):
    options = common_options(bi_encoder, tmp_path)
    with open(options["train_data"], "a", encoding="utf-8") as f:
        f.write('{"query": "q", "pos": "not a list"}\n')
    line = _cli_error(["embedding", *_flags(options)], capsys)
    assert f"{options['train_data']}:25:" in line


def test_debug_shows_the_traceback_and_bugs_are_not_hidden(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="learning_rate"):
        main(["embedding", *_flags(REQUIRED), "--learning_rate", "-1", "--debug"])

    def bug(config):
        raise RuntimeError("a bug in the trainer")

    monkeypatch.setattr("rag_retrieval_train.cli.load_trainer", lambda name: (EmbeddingTrainConfig, bug))
    with pytest.raises(RuntimeError, match="a bug"):  # not turned into a one-line user error
        main(["embedding", *_flags(REQUIRED)])


def test_the_installed_command_prints_one_line(tmp_path):
    data = write_triplets(tmp_path / "train.jsonl")
    result = subprocess.run(
        [sys.executable, "-m", "rag_retrieval_train", "reranker", *_flags({**REQUIRED, "train_data": str(data)})],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # nothing else on stderr either: no log lines, no traceback
    assert lines[0].startswith("rag-retrieval-train: error: model_name_or_path: ") and "'m'" in lines[0]


def test_a_full_disk_while_saving_is_one_line_and_the_run_resumes(bert_cross_encoder, tmp_path):
    """``ulimit -f`` (RLIMIT_FSIZE) stops the first checkpoint's optimizer state midway: torch.save
    reports it as a RuntimeError naming no file. One line naming the folder, exit 2; resume then works."""
    import resource

    rows = [{"query": "what is a panda", "pos": ["The giant panda is a bear."], "neg": ["Paris.", "Python."]}] * 8
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    size = (bert_cross_encoder / "model.safetensors").stat().st_size
    flags = _flags(
        {
            "model_name_or_path": str(bert_cross_encoder),
            "train_data": str(data),
            "output_dir": str(out),
            "max_steps": 2,
            "save_steps": 1,
            "batch_size": 2,
            "train_group_size": 3,
            "report_to": "[]",
            "disable_progress_bar": "true",
        }
    )

    def limit() -> None:  # room for the weights, not for the optimizer's two moments beside them
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(size * 1.5), resource.RLIM_INFINITY))

    command = [sys.executable, "-m", "rag_retrieval_train", "reranker", *flags]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    full = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert full.returncode == 2, full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rag-retrieval-train: error: cannot write to {str(out)!r}: the disk is full")
    assert "Traceback" not in full.stderr
    resumed = subprocess.run([*command, "--resume", "true"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "rag_retrieval.json").read_text())["training"]["steps"] == 2
