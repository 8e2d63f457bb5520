"""Device and dtype resolution."""

from __future__ import annotations

import logging

import pytest
import torch

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core.device import resolve_device, resolve_dtype


def test_default_device_on_a_cpu_machine():
    if torch.cuda.is_available():
        assert resolve_device(None).type == "cuda"
    else:
        assert resolve_device(None).type in {"cpu", "mps"}


@pytest.mark.parametrize("name", ["float16", "fp16", "bfloat16", torch.bfloat16])
def test_half_precision_falls_back_to_float32_on_cpu(name, caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_dtype(name, torch.device("cpu")) == torch.float32
    assert "float32" in caplog.text


def test_half_precision_is_kept_off_the_cpu():
    assert resolve_dtype("bf16", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype(torch.float16, torch.device("mps")) == torch.float16


def test_model_is_loaded_on_the_requested_device_and_dtype(bert_cross_encoder):
    ranker = Reranker(bert_cross_encoder, device="cpu", dtype="float32")
    assert next(ranker.model.parameters()).device.type == "cpu"
    assert next(ranker.model.parameters()).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_on_gpu_is_close_to_float32(bert_cross_encoder, dtype):
    pairs = [("what is a panda?", "The giant panda is a bear."), ("q", "Paris is in France.")]
    full = Reranker(bert_cross_encoder, device="cuda").compute_score(pairs)
    half = Reranker(bert_cross_encoder, device="cuda", dtype=dtype)
    assert next(half.model.parameters()).dtype == getattr(torch, dtype)
    assert half.compute_score(pairs) == pytest.approx(full, abs=2e-2)
