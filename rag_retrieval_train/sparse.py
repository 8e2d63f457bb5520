"""The sparse trainer: learned sparse retrievers (SPLADE, inference-free SPLADE) with sentence-transformers'
``SpladeLoss`` (a contrastive loss plus FLOPS regularizers), written as ``SparseEncoder`` folders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments

from rag_retrieval_integrations.core import SparseModel

from .config import ConfigError, TrainConfig, key, require
from .eval_during_training import EvaluatingTrainer
from .losses.encoder_specs import SPARSE_LOSSES
from .losses.specs import choices_summary
from .trainer import TrainingRun

SparseLoss = Literal[tuple(SPARSE_LOSSES)]  # type: ignore[valid-type]


class SparseTrainer(EvaluatingTrainer, SparseEncoderTrainer):
    """sentence-transformers' sparse trainer, whose ``evaluate()`` runs ``eval_data``'s evaluator."""


@dataclass
class SparseTrainConfig(TrainConfig):
    """Options of ``rag-retrieval-train sparse`` (see docs/training-keys.md for each).

    ``model_name_or_path`` is a ``SparseEncoder`` checkpoint (trained further as it is) or a masked
    LM (BERT, DistilBERT...), which gets a SPLADE head: ``architecture: splade`` (the MLM head's
    logits max-pooled over the tokens, for queries and documents) or ``inference-free`` (queries
    weighted by a learned static weight per token, no transformer at query time). The loss is
    sentence-transformers' ``SpladeLoss``: ``SparseMultipleNegativesRankingLoss`` at ``1 / temperature``
    plus the FLOPS regularizer, ``sum_j (mean_i w_ij)^2`` over the batch's term weights, weighted
    by ``document_regularizer_weight`` and ``query_regularizer_weight``. ``eval_data`` is a retrieval
    set, indexed with ``SparseIndex`` by the model in training.
    """

    EVAL_TASK: ClassVar[str] = "retrieval"

    loss: SparseLoss = key(next(iter(SPARSE_LOSSES)), choices_summary(SPARSE_LOSSES))
    architecture: Literal["splade", "inference-free"] = key(
        "splade", "new model on a masked LM: splade (both sides encoded) or inference-free (static query weights)"
    )
    pooling_strategy: Literal["max", "sum"] = key("max", "new model: how SPLADE pools the MLM logits over tokens")
    temperature: float = key(1.0, "softmax temperature of the dot products (sparse scores are large: 1)")
    train_group_size: int = key(2, "texts per query: 1 positive + (n - 1) hard negatives")
    document_regularizer_weight: float = key(3e-5, "weight of the FLOPS regularizer on document term weights")
    query_regularizer_weight: float = key(5e-5, "weight of the FLOPS regularizer on query term weights (splade)")
    query_prompt: str = key("", "text put before every query (saved as the model's query prompt)")
    passage_prompt: str = key("", "text put before every document (saved as the model's document prompt)")

    def validate(self) -> None:
        super().validate()
        SPARSE_LOSSES[self.loss].check_group_size(self.train_group_size)
        if self.train_group_size < 1:
            raise ConfigError(f"train_group_size must be at least 1, got {self.train_group_size}")
        require(self, "temperature", above=0)
        for name in ("document_regularizer_weight", "query_regularizer_weight"):
            require(self, name, at_least=0)


class SparseTrainingRun(TrainingRun):
    """``rag-retrieval-train sparse``: data + loss + model on the shared stack (``SparseEncoderTrainer``)."""

    name: ClassVar[str] = "sparse"
    config: SparseTrainConfig

    def build_family(self) -> SparseModel:
        c = self.config
        return SparseModel.for_training(
            c.model_name_or_path,
            architecture=c.architecture,
            pooling_strategy=c.pooling_strategy,
            query_prompt=c.query_prompt,
            document_prompt=c.passage_prompt,
            max_length=c.max_length,
        )

    def build_train_dataset(self, model: torch.nn.Module) -> Any:
        c = self.config
        return self.text_groups(
            SPARSE_LOSSES[c.loss].data,
            model.tokenizer,
            c.max_length,
            query_prompt=c.query_prompt,
            passage_prompt=c.passage_prompt,
        )

    def build_loss(self, model: torch.nn.Module) -> torch.nn.Module:
        return SPARSE_LOSSES[self.config.loss].build(self.config, model)

    def trainer_classes(self) -> tuple[type, type]:
        return SparseTrainer, SparseEncoderTrainingArguments

    def training_arguments(self, args_class: type) -> Any:
        from .data import training_columns

        args = super().training_arguments(args_class)
        if self.config.architecture == "inference-free" or _has_router(self.family.model):
            # a Router sends each column to its side: the query column to the static weights,
            # every document column to SPLADE
            columns = training_columns(SPARSE_LOSSES[self.config.loss].data, self.config.train_group_size)
            args.router_mapping = {name: "query" if i == 0 else "document" for i, name in enumerate(columns)}
        return args

    def save_model(self, trainer: Any, model: torch.nn.Module) -> None:
        if trainer.is_world_process_zero():
            model.save(str(self.output_dir), create_model_card=False)  # ours: model_card.py

    def metadata(self, model: torch.nn.Module, loss: torch.nn.Module) -> dict[str, Any]:
        return {
            "architecture": "inference-free" if _has_router(model) else "splade",
            "vocab_size": self.family.vocab_size,
            "max_length": model.max_seq_length,
            "similarity": model.similarity_fn_name,
            "prompts": {"query": self.config.query_prompt, "document": self.config.passage_prompt},
            "base_model": self.config.model_name_or_path,
            "loss": self.config.loss,
        }


def _has_router(model: torch.nn.Module) -> bool:
    from sentence_transformers.base.modules import Router

    return any(isinstance(module, Router) for module in model.children())


def train_sparse(config: SparseTrainConfig) -> Any:
    """Run the sparse trainer; returns the output folder."""
    return SparseTrainingRun(config).run()
