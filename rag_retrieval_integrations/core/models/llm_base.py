"""Shared machinery of the decoder-LLM families: loading, left padding, last-token scoring,
and early exit at a requested layer."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedModel

from ..errors import InvalidCheckpointError
from ..text.pair_encoding import EncodedPairs
from .base import Loaded, ModelPath
from .checkpoint import CheckpointInfo
from .loading import capped_max_length, check_tokenizer_files, position_limit
from .pair_family import PairEncodingFamily

DEFAULT_LLM_MAX_LENGTH = 1024
DEFAULT_MAX_BATCH_TOKENS = 16384


class _EarlyExit(Exception):
    """Raised from a forward hook to stop a forward pass once the deepest wanted layer ran."""


def load_decoder_tokenizer(info: CheckpointInfo, hf_kwargs: dict[str, Any]) -> Any:
    """A decoder checkpoint's tokenizer (from its GGUF file when it has one), with a pad token."""
    if info.gguf_file is None:  # a GGUF file holds its tokenizer
        check_tokenizer_files(info.path)
    return with_pad_token(AutoTokenizer.from_pretrained(info.path, **hf_kwargs), info.path)


def with_pad_token(tokenizer: Any, path: str) -> Any:
    """``tokenizer``, its eos token made the pad token when it has none (decoder tokenizers often
    have none; any id works under the attention mask)."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise InvalidCheckpointError(f"the tokenizer of {path!r} has neither pad nor eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def decoder_max_length(
    model: PreTrainedModel, max_length: int | None, default: int, path: str
) -> tuple[int | None, int]:
    """The model's position limit and the ``max_length`` to use: the one asked for (capped at the
    limit, with a warning), or the limit, at most ``default``."""
    limit = position_limit(model.config)
    if max_length is None:
        return limit, min(limit or default, default)
    return limit, capped_max_length(max_length, limit, path)


def require_chat_template(tokenizer: Any, path: str, what: str) -> None:
    """Refuse a tokenizer without a chat template for a family that renders one (``what`` names it)."""
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidCheckpointError(
            f"the tokenizer of {path!r} has no chat template; {what} needs a chat (instruction-tuned) model "
            "(or set tokenizer.chat_template)"
        )


def left_padded_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class DecoderReranker(PairEncodingFamily):
    """Base of the decoder-LLM families: loads the tokenizer (pad token set when it has none),
    pads on the left whatever the tokenizer's default, so the last real token is always the
    last position, and scores the inputs in token-budgeted, length-sorted batches.

    Args:
        max_batch_tokens: most tokens (padded) in one forward pass; on CUDA an out-of-memory
            error halves the batch and retries.
        cutoff_layers: score from the hidden state after these layers (1 = the first decoder
            layer, the layer count = the full model) instead of the full model; one score list
            per layer. Also accepted by ``compute_score``/``rank``/``rank_many``.
        **options: the common options of :class:`BaseReranker`.
    """

    padding_side = "left"
    reads_gguf = True

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
        cutoff_layers: Sequence[int] | int | None = None,
        **options: Any,
    ) -> None:
        if max_batch_tokens is not None and (not isinstance(max_batch_tokens, int) or max_batch_tokens <= 0):
            raise ValueError(f"max_batch_tokens must be a positive integer or None, got {max_batch_tokens!r}")
        self.max_batch_tokens = max_batch_tokens
        self.cutoff_layers = cutoff_layers  # as asked; checked against the model's layers once it is loaded
        super().__init__(model_name_or_path, **options)

    def _load(self, loaded: Loaded | None) -> None:
        path = self.checkpoint.path
        self.tokenizer = with_pad_token(loaded.tokenizer, path) if loaded else self._load_tokenizer()
        self.model: PreTrainedModel = loaded.model if loaded else self._load_model()
        self._check_model(self.model)
        self.model.to(self.device).eval()
        self.position_limit, self.max_length = decoder_max_length(
            self.model, self.max_length, DEFAULT_LLM_MAX_LENGTH, path
        )
        self._forward_params = set(inspect.signature(self.model.forward).parameters)
        self.cutoff_layers = self._check_cutoff_layers(self.cutoff_layers)

    # ---- what a family implements --------------------------------------------------------

    def _load_model(self) -> PreTrainedModel:
        raise NotImplementedError

    def _load_tokenizer(self) -> Any:
        return load_decoder_tokenizer(self.checkpoint, self.hf_kwargs)

    def _check_model(self, model: PreTrainedModel) -> None:
        """Validate (and adapt) a loaded model; called for models given to ``from_model`` too."""

    def _encode(self, queries: list[str], docs: list[str], split_long_docs: bool) -> EncodedPairs:
        raise NotImplementedError

    def _document_window_limit(self) -> int | None:
        assert self.max_length is not None
        # One probe pair, encoded as scoring does: what is not its query or document token is
        # the prompt. A prompt that alone overflows max_length fails here, at construction.
        probe = self._encode(["q"], ["d"], split_long_docs=False)
        return self.max_length - len(probe.input_ids[0]) + 1

    def forward_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._full_scores(batch)

    def _head_scores(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Scores from the final-norm'ed hidden state of the last token, shape (batch,)."""
        raise NotImplementedError

    def _full_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores from a full forward pass, shape (batch,)."""
        raise NotImplementedError

    # ---- scoring -------------------------------------------------------------------------

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def _check_cutoff_layers(self, cutoff_layers: Sequence[int] | int | None) -> list[int] | None:
        if cutoff_layers is None:
            return None
        layers = [cutoff_layers] if isinstance(cutoff_layers, int) else list(cutoff_layers)
        if not layers:
            raise ValueError("cutoff_layers must name at least one layer")
        for layer in layers:
            if not isinstance(layer, int) or isinstance(layer, bool) or not 1 <= layer <= self.num_layers:
                raise ValueError(
                    f"cutoff_layers must be layer numbers between 1 and {self.num_layers} (this model has "
                    f"{self.num_layers} layers), got {layer!r}"
                )
        return layers

    def _inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if "position_ids" in self._forward_params:
            inputs["position_ids"] = left_padded_positions(batch["attention_mask"])
        return inputs

    def _layer_scores(self, batch: dict[str, torch.Tensor], layers: list[int]) -> torch.Tensor:
        """Early exit: the head applied to each requested layer's last hidden state, shape
        (batch, len(layers)); the forward pass stops after the deepest requested layer."""
        decoder = self.model.base_model
        blocks, norm = getattr(decoder, "layers", None), getattr(decoder, "norm", None)
        if blocks is None or norm is None:
            raise TypeError(
                f"{type(self.model).__name__} has no decoder .layers/.norm; per-layer scores need a "
                "Llama/Qwen/Gemma/Mistral-style decoder"
            )
        deepest = max(layers)
        captured: dict[int, torch.Tensor] = {}

        def capture(layer: int):
            def hook(_module: torch.nn.Module, _args: Any, output: Any) -> None:
                hidden = output[0] if isinstance(output, tuple) else output
                captured[layer] = hidden[:, -1]
                if layer == deepest:
                    raise _EarlyExit

            return hook

        handles = [blocks[layer - 1].register_forward_hook(capture(layer)) for layer in set(layers)]
        try:
            decoder(**self._inputs(batch), use_cache=False)
        except _EarlyExit:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return torch.stack([self._head_scores(norm(captured[layer])) for layer in layers], dim=-1)

    @torch.inference_mode()
    def _score(
        self, queries: list[str], docs: list[str], batch_size: int, cutoff_layers: Sequence[int] | int | None = None
    ) -> np.ndarray:
        layers = self._check_cutoff_layers(cutoff_layers) if cutoff_layers is not None else self.cutoff_layers
        if layers is None:
            score_batch = self._full_scores
        else:
            score_batch = lambda batch: self._layer_scores(batch, layers)
        # Early-exit hooks live on shared modules: the family's lock keeps this one call at a time.
        return self._score_windows(
            queries, docs, batch_size, score_batch, padding_side="left", max_batch_tokens=self.max_batch_tokens
        )
