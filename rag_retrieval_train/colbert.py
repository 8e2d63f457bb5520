"""The ColBERT trainer: late-interaction models with a contrastive or a distillation loss, written
as sentence-transformers ``MultiVectorEncoder`` folders that ``Reranker(path)`` loads as they are."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal

import torch

from rag_retrieval_integrations.core.models.checkpoint import colbert_format, read_checkpoint
from rag_retrieval_integrations.core.models.colbert import (
    DEFAULT_DIM,
    DEFAULT_QUERY_LENGTH,
    DOCUMENT_MARKER,
    QUERY_MARKER,
    build_colbert_model,
    load_colbert_model,
)
from rag_retrieval_integrations.core.models.maxsim import DEFAULT_CHUNK_ELEMENTS
from rag_retrieval_integrations.core.text.long_text import clip_for_truncation

from .config import ConfigError, TrainConfig, require
from .inference_length import inference_length
from .trainer import TrainingRun

logger = logging.getLogger(__name__)


@dataclass
class ColBERTTrainConfig(TrainConfig):
    """Options of ``rag-retrieval-train colbert`` (each in docs/training.md and docs/training-keys.md).

    ``max_length`` is the document length in training (tokens, markers and special tokens
    included); ``inference_document_length`` the one the checkpoint is saved with, which every
    inference path (``Reranker``, the indexes, the retrievers, ``rag-retrieval-eval``) uses by
    default. Unset, it is the longer of ``max_length`` and the base model's own length (its
    sentence-transformers ``max_seq_length``, else its tokenizer's limit, at most 512), within
    the base model's positions: training at 128 tokens for speed no longer cuts documents at 128
    at inference (SQuAD held-out R@10 0.9158 at 128, 0.9456 at 256). ``query_length`` is the
    query length. ``dim``, the markers, the lengths, ``query_expansion``,
    ``skip_punctuation`` and ``query_mean`` shape a new model; a ColBERT checkpoint given as
    ``model_name_or_path`` keeps its own (a warning names any that differ).
    """

    # how the scores are chunked in memory, not what they are
    RESUME_FREE_KEYS: ClassVar[frozenset[str]] = TrainConfig.RESUME_FREE_KEYS | {
        "score_chunk_elements",
        "mini_batch_size",
    }

    loss: Literal["contrastive", "distill"] = "contrastive"
    temperature: float = 1.0
    teacher_temperature: float = 1.0
    train_group_size: int = 2  # contrastive: 1 positive + (n - 1) hard negatives; distill: n scored documents
    dim: int = DEFAULT_DIM
    query_length: int = DEFAULT_QUERY_LENGTH
    query_expansion: bool = True
    attend_to_expansion_tokens: bool = False
    skip_punctuation: bool = True
    query_marker: str = QUERY_MARKER
    document_marker: str = DOCUMENT_MARKER
    query_mean: bool = False
    score_chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
    mini_batch_size: int | None = None
    gather_across_devices: bool = False
    inference_document_length: int | None = None

    def validate(self) -> None:
        super().validate()
        for name in ("dim", "query_length", "score_chunk_elements"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.inference_document_length is not None and self.inference_document_length <= 0:
            raise ConfigError(
                f"inference_document_length must be positive or null, got {self.inference_document_length!r}"
            )
        if self.mini_batch_size is not None and self.mini_batch_size <= 0:
            raise ConfigError(f"mini_batch_size must be positive or null, got {self.mini_batch_size!r}")
        for name in ("temperature", "teacher_temperature"):
            require(self, name, above=0)
        if self.train_group_size < 1:
            raise ConfigError(f"train_group_size must be at least 1, got {self.train_group_size}")
        if self.loss == "distill" and self.train_group_size < 2:
            raise ConfigError(
                f"loss=distill needs train_group_size >= 2 (a softmax over one document carries no signal), "
                f"got {self.train_group_size}"
            )


def build_colbert_training_model(config: ColBERTTrainConfig) -> Any:
    """The ``MultiVectorEncoder`` to train: a ColBERT checkpoint as it is, or a new one on an encoder."""
    info = read_checkpoint(config.model_name_or_path)
    if colbert_format(info) is not None:
        model = load_colbert_model(info)
        _warn_on_kept_settings(model, config)
        return model
    return build_colbert_model(
        info.path,
        dim=config.dim,
        query_marker=config.query_marker,
        document_marker=config.document_marker,
        query_length=config.query_length,
        document_length=config.max_length,
        query_expansion=config.query_expansion,
        attend_to_expansion_tokens=config.attend_to_expansion_tokens,
        skip_punctuation=config.skip_punctuation,
        query_mean=config.query_mean,
    )


def _warn_on_kept_settings(model: Any, config: ColBERTTrainConfig) -> None:
    transformer = model[0]
    expansion = transformer.query_expansion
    kept = {
        "dim": model.get_embedding_dimension(),
        "query_length": expansion["length"] if expansion else transformer.query_length,
        "query_expansion": expansion is not None,
        "query_mean": model.similarity_fn_name == "meanmaxsim",
    }
    defaults = ColBERTTrainConfig()
    # Only settings the config changed from their defaults: those the user asked for and does not get.
    differ = [
        f"{k}={v!r} (config: {getattr(config, k)!r})"
        for k, v in kept.items()
        if getattr(config, k) != getattr(defaults, k) and v != getattr(config, k)
    ]
    if differ:
        logger.warning(
            "%s is a ColBERT checkpoint and keeps its own settings: %s", config.model_name_or_path, ", ".join(differ)
        )


class ColBERTTrainingRun(TrainingRun):
    """``rag-retrieval-train colbert``: data + loss + model on the shared stack (sentence-transformers'
    ``MultiVectorEncoderTrainer``)."""

    name: ClassVar[str] = "colbert"
    model_type: ClassVar[str] = "colbert"
    config: ColBERTTrainConfig

    def build_model(self) -> torch.nn.Module:
        return build_colbert_training_model(self.config)

    def build_train_dataset(self, model: torch.nn.Module) -> Any:
        from .data import EpochResampleCallback, load_examples, training_columns, training_view

        c = self.config
        kind = "preference" if c.loss == "distill" else "infonce"
        # The trainer puts prompts before the texts of a column only when told which: the markers (the
        # model's "query"/"document" prompts, which encode_query/encode_document add) go on the query
        # column and on every document column, so that training sees what inference sees.
        markers = [model.prompts.get("query") or "", model.prompts.get("document") or ""]
        self._marker_prompts = {
            name: markers[i > 0]
            for i, name in enumerate(training_columns(kind, c.train_group_size))
            if name != "label" and markers[i > 0]
        }
        self._resampler = EpochResampleCallback()
        return training_view(
            load_examples(c.train_data),
            kind=kind,
            group_size=c.train_group_size,
            seed=c.seed,
            epochs=self._resampler,
            # a huge document is cut before the collator tokenizes it whole (the same tokens kept)
            clip=partial(clip_for_truncation, model.tokenizer, max_tokens=max(c.max_length, c.query_length)),
        )

    def build_loss(self, model: torch.nn.Module) -> torch.nn.Module:
        from .losses import ColBERTContrastiveLoss, ColBERTDistillKLLoss

        c = self.config
        if c.loss == "contrastive":
            return ColBERTContrastiveLoss(
                model,
                c.temperature,
                chunk_elements=c.score_chunk_elements,
                mini_batch_size=c.mini_batch_size,
                gather_across_devices=c.gather_across_devices,
            )
        return ColBERTDistillKLLoss(
            model,
            c.temperature,
            c.teacher_temperature,
            chunk_elements=c.score_chunk_elements,
            mini_batch_size=c.mini_batch_size,
        )

    def trainer_classes(self) -> tuple[type, type]:
        from sentence_transformers import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments

        return MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments

    def training_arguments(self, args_class: type) -> Any:
        args = super().training_arguments(args_class)
        args.prompts = getattr(self, "_marker_prompts", None) or None
        return args

    def save_model(self, trainer: Any, model: torch.nn.Module) -> None:
        # the checkpoint carries the inference length, so every inference path uses it by default
        model[0].document_length = inference_length(
            self.config.inference_document_length,
            self.config.max_length,
            self.config.model_name_or_path,
            model[0].auto_model.config,
        )
        if trainer.is_world_process_zero():
            model.save(str(self.output_dir))

    def metadata(self, model: torch.nn.Module, loss: torch.nn.Module) -> dict[str, Any]:
        transformer = model[0]
        expansion = transformer.query_expansion
        return {
            "embedding_dim": model.get_embedding_dimension(),
            "query_length": expansion["length"] if expansion else transformer.query_length,
            "query_expansion": expansion is not None,
            "document_length": transformer.document_length,
            "training_document_length": self.config.max_length,
            "similarity": model.similarity_fn_name,
            "prompts": dict(model.prompts),
            "base_model": self.config.model_name_or_path,
            "loss": self.config.loss,
        }


def train_colbert(config: ColBERTTrainConfig) -> Any:
    """Run the ColBERT trainer; returns the output folder."""
    return ColBERTTrainingRun(config).run()
