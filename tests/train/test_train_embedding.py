"""The embedding trainer end to end on tiny models: CLI run, checkpoint round trip, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from kit.train_data import SENTENCES, common_options

from rag_retrieval_integrations import Reranker
from rag_retrieval_train.cli import main
from rag_retrieval_train.config import RESOLVED_CONFIG_FILE, build_config
from rag_retrieval_train.embedding import EmbeddingTrainConfig, EmbeddingTrainingRun


def test_cli_run_writes_a_drop_in_checkpoint(bi_encoder, tmp_path):
    from sentence_transformers import SentenceTransformer

    options = common_options(bi_encoder, tmp_path, mrl_dims=[16, 32], train_group_size=3)
    config_file = tmp_path / "cfg.yaml"
    config_file.write_text(yaml.safe_dump({**options, "batch_size": 99}))
    assert main(["embedding", "--config", str(config_file), "--batch_size", "4"]) == 0
    out = Path(options["output_dir"])
    assert (out / "loss_curve.png").stat().st_size > 0
    resolved = yaml.safe_load((out / RESOLVED_CONFIG_FILE).read_text())
    assert resolved["batch_size"] == 4 and resolved["mrl_dims"] == [16, 32]
    metadata = json.loads((out / "rag_retrieval.json").read_text())
    assert metadata["model_type"] == "embedding" and metadata["matryoshka_dims"] == [32, 16]
    assert metadata["training"]["steps"] == 6 and metadata["pooling"] == "mean"
    # trained at 32 tokens, saved for inference at the base model's own length (its max_seq_length)
    base_length = SentenceTransformer(str(bi_encoder), device="cpu").max_seq_length
    assert base_length > 32 and metadata["training_max_length"] == 32
    assert metadata["max_length"] == base_length == SentenceTransformer(str(out), device="cpu").max_seq_length
    # drop-in: sentence-transformers and our embedding family give the same vectors
    texts = SENTENCES[:6]
    ours = Reranker(out)
    theirs = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(ours.encode_documents(texts), theirs.encode_document(texts), atol=1e-5)
    # and training changed the model
    before = SentenceTransformer(str(bi_encoder), device="cpu").encode(texts)
    assert not np.allclose(before, theirs.encode(texts), atol=1e-3)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_resume_equals_an_uninterrupted_run(bi_encoder, tmp_path):
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def __init__(self, step: int) -> None:
            self.step = step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= self.step:
                control.should_training_stop = True
                control.should_save = True

    class InterruptedRun(EmbeddingTrainingRun):
        def callbacks(self):
            return [*super().callbacks(), StopAfter(3)]

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = build_config(EmbeddingTrainConfig, common_options(bi_encoder, tmp_path / "a"), {})
    EmbeddingTrainingRun(straight).run()

    options = common_options(bi_encoder, tmp_path / "b", save_steps=3)
    InterruptedRun(build_config(EmbeddingTrainConfig, options, {})).run()
    assert (Path(options["output_dir"]) / "checkpoint-3").is_dir()
    EmbeddingTrainingRun(build_config(EmbeddingTrainConfig, {**options, "resume": True}, {})).run()

    a, b = _weights(Path(straight.output_dir)), _weights(Path(options["output_dir"]))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)


def test_resume_without_checkpoint_is_a_clear_error(bi_encoder, tmp_path):
    config = build_config(EmbeddingTrainConfig, common_options(bi_encoder, tmp_path, resume=True), {})
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        EmbeddingTrainingRun(config).run()


def test_decoder_llm_backbone_with_lora_last_token_pooling_and_eos(decoder_llm, tmp_path):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    options = common_options(
        decoder_llm, tmp_path, lora=True, lora_r=4, max_steps=2, query_prompt="Instruct: find the passage\nQuery: "
    )
    assert main(["embedding", *[f"--{k}={v}" for k, v in options.items() if k != "report_to"], "--report_to=[]"]) == 0
    out = Path(options["output_dir"])
    metadata = json.loads((out / "rag_retrieval.json").read_text())
    assert metadata["pooling"] == "lasttoken" and metadata["prompts"]["query"].startswith("Instruct")
    assert not any("lora" in key for key in _weights(out)), "LoRA weights must be merged on save"
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("a short text")["input_ids"][-1] == tokenizer.eos_token_id  # EOS appended at inference too
    texts = SENTENCES[:4]
    theirs = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(Reranker(out).encode_queries(texts), theirs.encode_query(texts), atol=1e-5)
    base = AutoTokenizer.from_pretrained(decoder_llm)
    assert base("a short text")["input_ids"][-1] != base.eos_token_id
