"""Tiny ColBERT checkpoints in the three layouts the ``"colbert"`` family loads, built offline.

- :func:`build_tiny_colbert`: a sentence-transformers ``MultiVectorEncoder`` folder made by our
  :func:`~rag_retrieval_integrations.core.build_colbert_model` (markers, [MASK] expansion, skiplist);
- :func:`build_pylate_colbert`: the folder layout PyLate 1.x writes (``model_type: "ColBERT"``,
  ``query_prefix``/``document_prefix`` added to the vocabulary, ``pylate.models.Dense.Dense``);
- :func:`build_bge_m3`: a transformers XLM-RoBERTa encoder with BGE-M3's ``colbert_linear.pt``
  and ``sparse_linear.pt`` next to it (what FlagEmbedding's ``BGEM3FlagModel`` loads).

Weights are random and seeded; tokenizers come from :mod:`kit.checkpoints`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kit import checkpoints


def build_bert_backbone(path: Path, seed: int = 0) -> Path:
    """A bare 2-layer BERT encoder (``BertModel``) with the tiny WordPiece tokenizer."""
    from transformers import BertModel

    tokenizer = checkpoints._bert_tokenizer()
    torch.manual_seed(seed)
    BertModel(checkpoints._tiny_bert_config(len(tokenizer)), add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_colbert(
    path: Path,
    *,
    dim: int = 16,
    query_length: int = 12,
    document_length: int = 48,
    query_expansion: bool = True,
    skip_punctuation: bool = True,
    query_mean: bool = False,
    seed: int = 0,
) -> Path:
    """A ``MultiVectorEncoder`` folder from :func:`build_colbert_model` on a tiny BERT."""
    from rag_retrieval_integrations.core import build_colbert_model

    backbone = build_bert_backbone(path.with_name(path.name + "-backbone"), seed=seed)
    torch.manual_seed(seed)
    model = build_colbert_model(
        backbone,
        dim=dim,
        query_length=query_length,
        document_length=document_length,
        query_expansion=query_expansion,
        skip_punctuation=skip_punctuation,
        query_mean=query_mean,
    )
    model.save(str(path))
    return path


def build_pylate_colbert(path: Path, *, dim: int = 16, query_length: int = 10, seed: int = 1) -> Path:
    """A checkpoint in PyLate's layout: prefixes as added vocabulary, PyLate's Dense, top-level lengths."""
    from safetensors.torch import save_file
    from transformers import BertModel

    tokenizer = checkpoints._bert_tokenizer()
    tokenizer.add_tokens(["[Q] ", "[D] "])  # PyLate adds its prefixes, trailing space included
    torch.manual_seed(seed)
    config = checkpoints._tiny_bert_config(len(tokenizer))
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
            ]
        )
    )
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 40, "do_lower_case": False}))
    (path / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "model_type": "ColBERT",
                "prompts": {},
                "default_prompt_name": None,
                "similarity_fn_name": "MaxSim",
                "query_prefix": "[Q] ",
                "document_prefix": "[D] ",
                "query_length": query_length,
                "document_length": 40,
                "attend_to_expansion_tokens": False,
                "skiplist_words": [".", ",", "?"],
            }
        )
    )
    (path / "1_Dense").mkdir()
    (path / "1_Dense" / "config.json").write_text(
        json.dumps(
            {
                "in_features": config.hidden_size,
                "out_features": dim,
                "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity",
            }
        )
    )
    save_file(
        {"linear.weight": torch.randn(dim, config.hidden_size) * 0.2}, str(path / "1_Dense" / "model.safetensors")
    )
    return path


def build_bge_m3(path: Path, *, colbert_dim: int = 24, seed: int = 2) -> Path:
    """A tiny XLM-RoBERTa encoder with BGE-M3's ``colbert_linear.pt`` (and ``sparse_linear.pt``)."""
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    tokenizer = XLMRobertaTokenizerFast(
        tokenizer_object=checkpoints._unigram_tokenizer(),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=254,
    )
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=258,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
    )
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    torch.save(torch.nn.Linear(config.hidden_size, colbert_dim).state_dict(), path / "colbert_linear.pt")
    torch.save(torch.nn.Linear(config.hidden_size, 1).state_dict(), path / "sparse_linear.pt")
    return path
