"""Decoder LLM with a 1-logit sequence-classification head (Qwen2/Llama ``*ForSequenceClassification``)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from ..errors import InvalidCheckpointError
from .base import ModelCard, ModelPath
from .checkpoint import CheckpointInfo, checkpoint_info, is_decoder_only, is_pair_classifier
from .cross_encoder import classifier_for_training, logits_to_scores
from .llm_prompted import PromptedDecoderReranker, with_training_format
from .loading import load_pretrained
from .registry import register_model_type


@register_model_type("llm-classifier")
class LLMClassifierReranker(PromptedDecoderReranker):
    """A decoder LLM with a classification head on its last token: raw score = the head's logit.

    Reads pairs in a prompt format as :class:`LLMReranker` does (``prompt_format=``, or the one
    our metadata saved; a checkpoint that says none is refused), pads on the left and pools the last
    token; a 2-logit head scores ``logit[1] - logit[0]`` as for cross-encoders. The pad token
    is set from ``eos`` when the tokenizer has none, and written into the model config, which
    transformers needs to find the last token of each row.

    Detected from a decoder's sequence-classification checkpoint; trained by :meth:`for_training`
    with that head, or a new 1-logit head on a causal LM.
    """

    detection_priority = 10
    peft_task_type = "SEQ_CLS"
    card = ModelCard("transformers", "text-ranking", ("reranker", "llm-reranker"))
    reranker_backbone = True

    @classmethod
    def matches(cls, info: CheckpointInfo) -> bool:
        """A pair classifier (see :func:`~.checkpoint.is_pair_classifier`) that is a decoder LLM."""
        return is_pair_classifier(info) and is_decoder_only(info.config or {})

    @classmethod
    def for_training(cls, base_model: ModelPath, **options: Any) -> LLMClassifierReranker:
        """A classifier reranker to train on a decoder ``base_model``: its own classification head,
        or a new 1-logit head on the last token of a causal LM."""
        return classifier_for_training(cls, base_model, **with_training_format(checkpoint_info(base_model), options))

    def _load_model(self) -> PreTrainedModel:
        return load_pretrained(
            AutoModelForSequenceClassification,
            self.checkpoint,
            "sequence-classification head (an llm-classifier)",
            dtype=self.dtype,
            **self.hf_kwargs,
        )

    def _check_model(self, model: PreTrainedModel) -> None:
        if model.config.num_labels not in (1, 2):
            raise InvalidCheckpointError(
                f"{self.checkpoint.path!r} has a classification head with {model.config.num_labels} labels; "
                "a reranker needs 1 or 2"
            )
        model.config.pad_token_id = self.tokenizer.pad_token_id

    def _full_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # The last position is the last real token under left padding, whatever the pad id is.
        hidden = self.model.base_model(**self._inputs(batch), use_cache=False).last_hidden_state
        return self._head_scores(hidden[:, -1])

    def _head_scores(self, last_hidden: torch.Tensor) -> torch.Tensor:
        head = getattr(self.model, "score", None)
        if head is None:
            raise TypeError(f"{type(self.model).__name__} has no .score head; expected a Llama/Qwen-style classifier")
        return logits_to_scores(head(last_hidden))
