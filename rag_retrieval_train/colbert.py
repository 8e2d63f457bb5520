"""The ColBERT trainer: late-interaction models with a contrastive or a distillation loss, written
as sentence-transformers ``MultiVectorEncoder`` folders that ``Reranker(path)`` loads as they are."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from sentence_transformers import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments

from rag_retrieval_integrations.core import ColBERTReranker
from rag_retrieval_integrations.core.models.colbert import (
    DEFAULT_DIM,
    DEFAULT_QUERY_LENGTH,
    DOCUMENT_MARKER,
    QUERY_MARKER,
)
from rag_retrieval_integrations.core.models.maxsim import DEFAULT_CHUNK_ELEMENTS

from .config import ConfigError, TrainConfig, key, require
from .eval_during_training import EvaluatingTrainer
from .inference_length import inference_length
from .losses.encoder_specs import COLBERT_LOSSES
from .losses.specs import choices_summary
from .trainer import TrainingRun

logger = logging.getLogger(__name__)

ColBERTLoss = Literal[tuple(COLBERT_LOSSES)]  # type: ignore[valid-type]
# the keys that shape a new model (build_colbert_model's arguments); max_length is its document_length
MODEL_KEYS = (
    "dim",
    "query_marker",
    "document_marker",
    "query_length",
    "query_expansion",
    "attend_to_expansion_tokens",
    "skip_punctuation",
    "query_mean",
)


class ColBERTTrainer(EvaluatingTrainer, MultiVectorEncoderTrainer):
    """sentence-transformers' multi-vector trainer, whose ``evaluate()`` runs ``eval_data``'s evaluator."""


@dataclass
class ColBERTTrainConfig(TrainConfig):
    """Options of ``rag-retrieval-train colbert`` (see docs/training-keys.md for each).

    ``max_length`` is the document length in training (tokens, markers and special tokens
    included); ``inference_document_length`` the one the checkpoint is saved with, which every
    inference path (``Reranker``, the indexes, the retrievers, ``rag-retrieval-eval``) uses by
    default. Unset, it is the longer of ``max_length`` and the base model's own length (its
    sentence-transformers ``max_seq_length``, else its tokenizer's limit, at most 512), within
    the base model's positions: training at 128 tokens for speed no longer cuts documents at 128
    at inference (SQuAD held-out R@10 0.9158 at 128, 0.9456 at 256). ``dim``, the markers,
    the lengths, ``query_expansion``, ``skip_punctuation`` and ``query_mean`` shape a new model;
    a ColBERT checkpoint given as ``model_name_or_path`` keeps its own (a warning names any that
    differ).

    ``eval_data`` is a retrieval set as ``rag-retrieval-eval retrieval`` reads it (a BEIR folder or a
    SQuAD v1.1 ``.json`` file), its corpus indexed with the model in training (exact MaxSim below
    100,000 token vectors); ``metric_for_best_model`` is one of ``nDCG@10`` (the default), ``MRR@10``,
    ``R@10``, ``R@100``.
    """

    # how the scores are chunked in memory, not what they are
    RESUME_FREE_KEYS: ClassVar[frozenset[str]] = TrainConfig.RESUME_FREE_KEYS | {
        "score_chunk_elements",
        "mini_batch_size",
    }
    EVAL_TASK: ClassVar[str] = "retrieval"

    loss: ColBERTLoss = key(next(iter(COLBERT_LOSSES)), choices_summary(COLBERT_LOSSES))
    temperature: float = key(1.0, "softmax temperature of the student's MaxSim scores")
    teacher_temperature: float = key(1.0, "distill: softmax temperature of the teacher's scores")
    train_group_size: int = key(
        2, "contrastive: 1 positive + (n - 1) hard negatives; distill: n scored documents per query"
    )
    dim: int = key(DEFAULT_DIM, "new model: dimension of the token projection")
    query_length: int = key(DEFAULT_QUERY_LENGTH, "new model: query tokens (markers and special tokens included)")
    query_expansion: bool = key(True, "new model: pad queries to query_length with scored [MASK] tokens")
    attend_to_expansion_tokens: bool = key(False, "new model: let the encoder attend to the [MASK] padding")
    skip_punctuation: bool = key(True, "new model: leave punctuation document tokens out of the score")
    query_marker: str = key(QUERY_MARKER, "new model: text put before every query (one special token)")
    document_marker: str = key(DOCUMENT_MARKER, "new model: text put before every document (one special token)")
    query_mean: bool = key(False, "new model: score MaxSim divided by the query's token count (MeanMaxSim)")
    score_chunk_elements: int = key(
        DEFAULT_CHUNK_ELEMENTS, "most elements of one chunk of the token-similarity tensor (memory, not results)"
    )
    mini_batch_size: int | None = key(
        None, "queries per forward pass in the loss, gradient-cached (memory, not results; null: the whole batch)"
    )
    gather_across_devices: bool = key(False, "contrastive: negatives from every device's batch, not only this one's")
    inference_document_length: int | None = key(
        None, "document length saved with the model (null: the longer of max_length and the base model's own)"
    )

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
        COLBERT_LOSSES[self.loss].check_group_size(self.train_group_size)


def build_colbert_training_model(config: ColBERTTrainConfig) -> ColBERTReranker:
    """The ColBERT family to train (its ``.model``, a ``MultiVectorEncoder``), from
    :meth:`ColBERTReranker.for_training`: a ColBERT checkpoint as it is, or a new one on an encoder."""
    settings = {name: getattr(config, name) for name in MODEL_KEYS}
    family = ColBERTReranker.for_training(config.model_name_or_path, document_length=config.max_length, **settings)
    _warn_on_kept_settings(family, config)
    return family


def _warn_on_kept_settings(family: ColBERTReranker, config: ColBERTTrainConfig) -> None:
    kept = {
        "dim": family.embedding_dim,
        "query_length": family.query_length,
        "query_expansion": family.query_expansion,
        "query_mean": family.query_mean,
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
    config: ColBERTTrainConfig

    def build_family(self) -> ColBERTReranker:
        return build_colbert_training_model(self.config)

    def build_train_dataset(self, model: torch.nn.Module) -> Any:
        c = self.config
        return self.text_groups(COLBERT_LOSSES[c.loss].data, model.tokenizer, max(c.max_length, c.query_length))

    def column_prompts(self) -> dict[str, str]:
        """The prompt of each training column. The trainer puts prompts before the texts of a column
        only when told which: the markers (the model's "query"/"document" prompts, which
        encode_query/encode_document add) go on the query column and on every document column, so
        that training sees what inference sees."""
        from .data import training_columns

        c = self.config
        prompts = self.family.model.prompts
        markers = [prompts.get("query") or "", prompts.get("document") or ""]
        return {
            name: markers[i > 0]
            for i, name in enumerate(training_columns(COLBERT_LOSSES[c.loss].data, c.train_group_size))
            if name != "label" and markers[i > 0]
        }

    def build_loss(self, model: torch.nn.Module) -> torch.nn.Module:
        return COLBERT_LOSSES[self.config.loss].build(self.config, model)

    def trainer_classes(self) -> tuple[type, type]:
        return ColBERTTrainer, MultiVectorEncoderTrainingArguments

    def training_arguments(self, args_class: type) -> Any:
        args = super().training_arguments(args_class)
        args.prompts = self.column_prompts() or None
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
            model.save(str(self.output_dir), create_model_card=False)  # ours: model_card.py

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
