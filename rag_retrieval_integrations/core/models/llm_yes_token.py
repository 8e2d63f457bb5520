"""Decoder yes-token reranker (bge-reranker-v2-gemma format) and its layerwise variant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from .base import Loaded, ModelCard, ModelPath
from .checkpoint import CheckpointInfo, checkpoint_info, has_generation_head
from .llm_inputs import token_id
from .llm_prompted import PromptedDecoderReranker, with_training_format
from .loading import load_pretrained
from .registry import register_model_type


@register_model_type("llm")
class LLMReranker(PromptedDecoderReranker):
    """A causal LM scoring a pair by the logits of answer tokens, in the checkpoint's prompt format.

    Input: the pair in its :class:`~.prompt_formats.PromptFormat` (``prompt_format=``, or the one
    the checkpoint saved); raw score: the logit of the format's yes token at the last position,
    or the log-odds ``logit(yes) - logit(no)`` for a format with a no token (``qwen3-reranker``:
    ``normalize=True`` gives its P(yes)). In the bge formats, scores equal FlagEmbedding's
    ``FlagLLMReranker.compute_score`` on the same checkpoint. With ``cutoff_layers``, scores come
    from earlier layers through the model's final norm and LM head (early exit; see
    :class:`DecoderReranker`).

    Args:
        yes_token: replaces the format's yes token; must be a single token of the tokenizer.
        **options: ``prompt_format``, ``prompt_template``, ``instruction`` (see
            :class:`PromptedDecoderReranker`), and those of :class:`DecoderReranker` and :class:`BaseReranker`.

    Detected from a causal-LM (or conditional-generation) checkpoint; trained by
    :meth:`for_training` with its own LM head scoring ``yes_token``.
    """

    detection_priority = 60
    peft_task_type = "CAUSAL_LM"
    card = ModelCard("transformers", "text-ranking", ("reranker", "llm-reranker", "yes-token"))
    reranker_backbone = True

    @classmethod
    def matches(cls, info: CheckpointInfo) -> bool:
        """A ``*ForCausalLM`` / ``*ForConditionalGeneration`` checkpoint (asked after the embedding family)."""
        return has_generation_head(info)

    @classmethod
    def for_training(cls, base_model: ModelPath, **options: Any) -> LLMReranker:
        """A yes-token reranker to train on a decoder ``base_model``: its LM head is the scoring head."""
        from transformers import AutoTokenizer

        info = checkpoint_info(base_model)
        model = AutoModelForCausalLM.from_pretrained(info.path)
        options = with_training_format(info, {"device": "cpu", **options})
        return cls.from_model(info, model, AutoTokenizer.from_pretrained(info.path), **options)

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        yes_token: str | None = None,
        **options: Any,
    ) -> None:
        self._yes_token_option = yes_token
        super().__init__(model_name_or_path, **options)

    def _format_yes_token(self) -> str | None:
        return self._yes_token_option

    def _load(self, loaded: Loaded | None) -> None:
        super()._load(loaded)
        self.yes_token, self.no_token = self.prompt_format.yes_token, self.prompt_format.no_token
        scores_with_token = self._scores_with_token()
        self.yes_id = token_id(self.tokenizer, self.yes_token, "yes") if scores_with_token else -1
        self.no_id = token_id(self.tokenizer, self.no_token, "no") if scores_with_token and self.no_token else None

    @property
    def native_layerwise(self) -> bool:
        """Whether the model's own forward takes ``cutoff_layers`` (minicpm-layerwise remote code)."""
        return "cutoff_layers" in self._forward_params

    def _scores_with_token(self) -> bool:
        """Whether the raw score is a token's logit (minicpm-layerwise scores with 1-logit heads)."""
        return not self.native_layerwise

    def _load_model(self) -> PreTrainedModel:
        return load_pretrained(
            AutoModelForCausalLM,
            self.checkpoint,
            "causal-LM head (an LLM reranker)",
            dtype=self.dtype,
            **self.hf_kwargs,
        )

    def _full_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.native_layerwise:
            return self._layer_scores(batch, [self.num_layers])[:, 0]
        extra = {"logits_to_keep": 1} if "logits_to_keep" in self._forward_params else {}
        logits = self.model(**self._inputs(batch), use_cache=False, **extra).logits[:, -1]
        return self._answer_scores(logits)

    def _answer_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """The raw score from last-position logits: logit(yes), or logit(yes) - logit(no)."""
        if self.no_id is None:
            return logits[:, self.yes_id]
        return logits[:, self.yes_id] - logits[:, self.no_id]

    def _layer_scores(self, batch: dict[str, torch.Tensor], layers: list[int]) -> torch.Tensor:
        if not self.native_layerwise:
            return super()._layer_scores(batch, layers)
        outputs = self.model(**self._inputs(batch), output_hidden_states=True, cutoff_layers=layers)
        per_layer = []
        for logits in outputs.logits:  # one (batch, length[, vocab]) tensor per requested layer
            last = logits[:, -1]
            if last.ndim == 2 and last.shape[-1] > 1:
                if self.yes_id < 0:
                    self.yes_id = token_id(self.tokenizer, self.yes_token, "yes")
                last = last[:, self.yes_id]
            per_layer.append(last.reshape(-1))
        return torch.stack(per_layer, dim=-1)

    def _head_scores(self, last_hidden: torch.Tensor) -> torch.Tensor:
        logits = self.model.get_output_embeddings()(last_hidden)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:  # Gemma-2 caps its logits; the early-exit head must do what the full model does
            logits = torch.tanh(logits / cap) * cap
        return self._answer_scores(logits)


@register_model_type("llm-layerwise")
class LayerwiseLLMReranker(LLMReranker):
    """Layerwise LLM reranker: one score list per requested ``cutoff_layers`` entry.

    Same model and input as :class:`LLMReranker` (which also takes ``cutoff_layers``); this
    family makes the layer choice explicit, defaulting to the last layer. Checkpoints whose
    own code takes ``cutoff_layers`` (bge-reranker-v2-minicpm-layerwise, loaded with
    ``trust_remote_code=True``) score with their own per-layer heads; any other causal LM
    scores by early exit through the final norm and LM head, stopping the forward pass at
    the deepest requested layer.
    """

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        cutoff_layers: Sequence[int] | int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(model_name_or_path, cutoff_layers=cutoff_layers, **options)

    def _load(self, loaded: Loaded | None) -> None:
        super()._load(loaded)
        if self.cutoff_layers is None:  # the layer choice made explicit: the last one by default
            self.cutoff_layers = [self.num_layers]
