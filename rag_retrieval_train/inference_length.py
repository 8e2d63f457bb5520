"""The length a trained checkpoint is saved for at inference, apart from the length it was trained at.

Trainers cut texts at ``max_length`` to keep a run fast (128 tokens on a CPU); saving that cut as
the checkpoint's length makes every inference path truncate at it too: a ColBERT trained at 128
and indexed at 128 cut 68% of SQuAD paragraphs and fell below the zero-shot bi-encoder (R@10
0.9313 against 0.9399; 0.9611 indexed at 256). The inference length is therefore its own
setting: unset, the longer of the training length and the base model's own length, within its
position embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag_retrieval_integrations.core.models.checkpoint import read_checkpoint
from rag_retrieval_integrations.core.models.cross_encoder import DEFAULT_MAX_LENGTH
from rag_retrieval_integrations.core.models.loading import default_max_length, position_limit, transformer_folder


def base_length(base: str) -> int:
    """The length a base checkpoint was made for: its sentence-transformers ``max_seq_length``,
    else its tokenizer's limit, at most 512 and within its position embeddings."""
    from transformers import AutoConfig, AutoTokenizer

    info = read_checkpoint(base)
    folder = transformer_folder(info)
    config = AutoConfig.from_pretrained(folder)
    st_config = Path(folder) / "sentence_bert_config.json" if info.is_local else None
    if st_config is not None and st_config.is_file():
        length = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(length, int) and length > 0:
            return min(length, position_limit(config) or length)
    return default_max_length(AutoTokenizer.from_pretrained(folder), config, DEFAULT_MAX_LENGTH)


def inference_length(requested: int | None, training_length: int, base: str, model_config: Any) -> int:
    """``requested``, or the longer of ``training_length`` and the base model's own; never past the positions."""
    length = requested if requested is not None else max(training_length, base_length(base))
    limit = position_limit(model_config)
    return min(length, limit) if limit else length
