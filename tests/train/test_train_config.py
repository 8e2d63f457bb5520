"""Training configuration: flags override YAML, unknown keys are errors, values are typed."""

from __future__ import annotations

import pytest
import yaml

from rag_retrieval_train.cli import main
from rag_retrieval_train.config import ConfigError, build_config, parse_flags, save_config
from rag_retrieval_train.embedding import EmbeddingTrainConfig

REQUIRED = {"model_name_or_path": "m", "train_data": "d.jsonl", "output_dir": "out"}


def test_flags_override_yaml_which_overrides_defaults():
    file_values = {**REQUIRED, "batch_size": 8, "learning_rate": 1e-4}
    flags = parse_flags(["--batch_size", "32", "--mrl-dims", "64,128", "--lora"])
    config = build_config(EmbeddingTrainConfig, file_values, flags)
    assert config.batch_size == 32  # flag beats YAML
    assert config.learning_rate == 1e-4  # YAML beats default
    assert config.temperature == 0.02  # default
    assert config.mrl_dims == [64, 128] and config.lora is True


def test_flag_syntaxes():
    assert parse_flags(["--a=1", "--b", "x y", "--c", "--d", "[1, 2]", "--e", "true"]) == {
        "a": "1",
        "b": "x y",
        "c": "true",
        "d": "[1, 2]",
        "e": "true",
    }


def test_flag_values_are_typed_by_their_field():
    flags = parse_flags(
        [
            "--query_prompt",
            "Instruct: find it\nQuery: ",
            "--mixed_precision",
            "no",
            "--mrl_dims",
            "[8, 16]",
            "--resume",
            "true",
            "--pooling",
            "none",
            "--learning_rate",
            "3e-4",
            "--output_dir",
            "123",
        ]
    )
    config = build_config(EmbeddingTrainConfig, REQUIRED, flags)
    assert config.query_prompt == "Instruct: find it\nQuery: "  # text stays text, not a YAML mapping
    assert config.mixed_precision == "no" and config.mrl_dims == [8, 16] and config.resume is True
    assert config.pooling is None and config.learning_rate == 3e-4 and config.output_dir == "123"
    assert build_config(EmbeddingTrainConfig, {**REQUIRED, "mixed_precision": False}, {}).mixed_precision == "no"
    with pytest.raises(ConfigError, match="expected --key value"):
        parse_flags(["batch_size", "3"])


@pytest.mark.parametrize("source", ["file", "flag"])
def test_unknown_key_lists_the_valid_ones(source):
    bad = {"batch_sise": 3}
    with pytest.raises(ConfigError, match="unknown key 'batch_sise'") as excinfo:
        build_config(
            EmbeddingTrainConfig, {**REQUIRED, **(bad if source == "file" else {})}, bad if source == "flag" else {}
        )
    assert "batch_size" in str(excinfo.value) and "mrl_dims" in str(excinfo.value)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("batch_size", "many", "batch_size must be an integer"),
        ("batch_size", 0, "batch_size must be positive"),
        ("mixed_precision", "fp8", "must be one of"),
        ("lora", "yes please", "must be true or false"),
        ("loss", "triplet", "must be one of"),
        ("mrl_dims", [64, "x"], r"mrl_dims\[1\]"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build_config(EmbeddingTrainConfig, REQUIRED, {key: value})


def test_required_keys_and_cross_field_checks():
    with pytest.raises(ConfigError, match="train_data is required"):
        build_config(EmbeddingTrainConfig, {"model_name_or_path": "m", "output_dir": "o"}, {})
    with pytest.raises(ConfigError, match="teacher_vectors"):
        build_config(EmbeddingTrainConfig, REQUIRED, {"loss": "distill"})
    with pytest.raises(ConfigError, match="mrl_weights"):
        build_config(EmbeddingTrainConfig, REQUIRED, {"mrl_dims": [8, 16], "mrl_weights": [1.0]})


def test_resolved_config_is_saved(tmp_path):
    config = build_config(EmbeddingTrainConfig, REQUIRED, {"batch_size": 4})
    saved = yaml.safe_load(save_config(config, tmp_path, "embedding").read_text())
    assert saved["trainer"] == "embedding" and saved["batch_size"] == 4 and saved["loss"] == "infonce"


def test_cli_errors_exit_with_a_message(tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({**REQUIRED, "batch_sise": 2}))
    with pytest.raises(SystemExit) as excinfo:
        main(["embedding", "--config", str(config)])
    assert excinfo.value.code == 2
    assert "unknown key 'batch_sise'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["embedding", "--config", str(tmp_path / "missing.yaml")])
    assert "does not exist" in capsys.readouterr().err
    assert main(["embedding", "--list-keys"]) == 0
    assert "mrl_dims: []" in capsys.readouterr().out
