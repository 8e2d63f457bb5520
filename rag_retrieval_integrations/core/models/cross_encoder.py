"""Cross-encoder family: any ``AutoModelForSequenceClassification`` encoder (BERT, XLM-R, ...)."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ..errors import InvalidCheckpointError
from ..text.pair_encoding import EncodedPairs, encode_pairs, pair_window_limit
from .base import BaseReranker, Loaded, ModelCard, ModelPath
from .checkpoint import (
    CheckpointInfo,
    checkpoint_info,
    has_classification_head,
    is_decoder_only,
    is_pair_classifier,
)
from .encoder_backend import EncoderBackendMixin
from .loading import capped_max_length, check_tokenizer_files, default_max_length, load_pretrained, position_limit
from .pair_family import PairEncodingFamily
from .registry import register_model_type

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 512
_Family = TypeVar("_Family", bound=BaseReranker)


def classifier_for_training(cls: type[_Family], base_model: ModelPath, **options: Any) -> _Family:
    """``cls`` on a sequence-classification model of ``base_model``: the checkpoint's own 1- or 2-logit
    head when it has one, else a new 1-logit head (a bi-encoder, a bare encoder, a causal LM)."""
    from transformers import AutoTokenizer

    info = checkpoint_info(base_model)
    head: dict[str, Any] = {}
    if not has_classification_head(info):
        logger.info("%s has no classification head: training a new 1-logit head", info.path)
        head["num_labels"] = 1
    model = AutoModelForSequenceClassification.from_pretrained(info.path, **head)
    return cls.from_model(info, model, AutoTokenizer.from_pretrained(info.path), **{"device": "cpu", **options})


def logits_to_scores(logits: torch.Tensor) -> torch.Tensor:
    """One raw score per row: the logit of a 1-logit head, ``logit[1] - logit[0]`` of a 2-logit head.

    For two labels the difference is the log-odds of the positive class, so ``sigmoid`` of it
    equals the softmax probability of label 1.
    """
    if logits.shape[-1] == 1:
        return logits[:, 0]
    return logits[:, 1] - logits[:, 0]


@register_model_type("cross-encoder")
class CrossEncoderReranker(EncoderBackendMixin, PairEncodingFamily):
    """A BERT-style cross-encoder: query and document read together, one relevance logit out.

    Loads any ``AutoModelForSequenceClassification`` checkpoint with a 1- or 2-logit head
    (bge-reranker, ms-marco MiniLM, mxbai-rerank, ...). Scores equal sentence-transformers'
    ``CrossEncoder.predict`` (identity activation) and FlagEmbedding's ``FlagReranker``.
    See :class:`BaseReranker` for the options.

    Detected from a sequence-classification encoder (or a sentence-transformers ``CrossEncoder``
    folder); trained by :meth:`for_training` with the checkpoint's head or a new 1-logit one.
    """

    detection_priority = 10
    peft_task_type = "SEQ_CLS"
    card = ModelCard("sentence-transformers", "text-ranking", ("cross-encoder", "reranker"))
    reranker_backbone = True

    @classmethod
    def matches(cls, info: CheckpointInfo) -> bool:
        """A pair classifier (see :func:`~.checkpoint.is_pair_classifier`) that is not a decoder LLM."""
        return is_pair_classifier(info) and not is_decoder_only(info.config or {})

    @classmethod
    def for_training(cls, base_model: ModelPath, **options: Any) -> CrossEncoderReranker:
        """A cross-encoder to train on ``base_model``: its own 1- or 2-logit classification head,
        or a new 1-logit head on an encoder without one (all-MiniLM-L6-v2, a bare BERT)."""
        return classifier_for_training(cls, base_model, **options)

    def _load(self, loaded: Loaded | None) -> None:
        path = self.checkpoint.path
        self.tokenizer = loaded.tokenizer if loaded else self._load_tokenizer(path)
        self.model = (
            loaded.model
            if loaded
            else load_pretrained(
                AutoModelForSequenceClassification,
                self.checkpoint,
                "sequence-classification head (a cross-encoder)",
                dtype=self.dtype,
                **self.hf_kwargs,
            )
        )
        num_labels = self.model.config.num_labels
        if num_labels not in (1, 2):
            raise InvalidCheckpointError(
                f"{path!r} has a classification head with {num_labels} labels; a cross-encoder needs 1 or 2"
            )
        self.model.to(self.device).eval()
        self._use_backend(self.model, "logits", self.tokenizer)
        if self.tokenizer.pad_token_id is None:
            raise InvalidCheckpointError(f"the tokenizer of {path!r} has no pad token")
        self.position_limit = position_limit(self.model.config)
        if self.max_length is None:
            self.max_length = default_max_length(self.tokenizer, self.model.config, DEFAULT_MAX_LENGTH)
        else:
            self.max_length = capped_max_length(self.max_length, self.position_limit, path)

    def _load_tokenizer(self, path: str) -> Any:
        check_tokenizer_files(path)
        return AutoTokenizer.from_pretrained(path, **self.hf_kwargs)

    def _document_window_limit(self) -> int | None:
        assert self.max_length is not None
        return pair_window_limit(self.tokenizer, self.max_length)

    def _encode(self, queries: list[str], docs: list[str], split_long_docs: bool) -> EncodedPairs:
        assert self.max_length is not None
        return encode_pairs(
            self.tokenizer,
            queries,
            docs,
            max_length=self.max_length,
            split_long_docs=split_long_docs,
            overlap=self.overlap,
            min_doc_share=self.min_doc_share,
        )

    def forward_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return logits_to_scores(self.model(**batch).logits)

    @torch.inference_mode()
    def _score(self, queries: list[str], docs: list[str], batch_size: int) -> np.ndarray:
        return self._score_windows(queries, docs, batch_size, self.forward_scores)
