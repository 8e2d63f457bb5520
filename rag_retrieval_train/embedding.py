"""The embedding trainer: bi-encoders (BERT-style or decoder LLMs) with InfoNCE, Matryoshka,
LLM-preference or distillation losses, written as sentence-transformers folders."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

from rag_retrieval_integrations.core import EmbeddingModel

from .config import ConfigError, TrainConfig, key, require
from .eval_during_training import EvaluatingTrainer
from .inference_length import inference_length
from .lora import LoRAOptions, add_lora, finish_lora
from .losses.encoder_specs import EMBEDDING_LOSSES
from .losses.specs import choices_summary
from .trainer import TrainingRun

logger = logging.getLogger(__name__)

EmbeddingLoss = Literal[tuple(EMBEDDING_LOSSES)]  # type: ignore[valid-type]


class EmbeddingTrainer(EvaluatingTrainer, SentenceTransformerTrainer):
    """sentence-transformers' trainer, whose ``evaluate()`` runs ``eval_data``'s evaluator."""


@dataclass
class EmbeddingTrainConfig(LoRAOptions, TrainConfig):
    """Options of ``rag-retrieval-train embedding`` (see docs/training-keys.md for each).

    ``eval_data`` is a retrieval set as ``rag-retrieval-eval retrieval`` reads it (a BEIR folder or a
    SQuAD v1.1 ``.json`` file), its corpus searched exhaustively with the model in training;
    ``metric_for_best_model`` is one of ``nDCG@10`` (the default), ``MRR@10``, ``R@10``, ``R@100``.
    """

    EVAL_TASK: ClassVar[str] = "retrieval"

    loss: EmbeddingLoss = key(next(iter(EMBEDDING_LOSSES)), choices_summary(EMBEDDING_LOSSES))
    temperature: float = key(0.02, "softmax temperature of the student's similarities")
    teacher_temperature: float = key(1.0, "preference: softmax temperature of the teacher's scores")
    train_group_size: int = key(
        2, "documents per query: 1 positive + (n - 1) hard negatives, or n scored ones (preference)"
    )
    mrl_dims: list[int] = key(doc="Matryoshka: also train the first d dimensions for each d listed", factory=list)
    mrl_weights: list[float] = key(doc="Matryoshka: one loss weight per mrl_dims entry (default: all 1)", factory=list)
    pooling: Literal["mean", "cls", "lasttoken"] | None = key(
        None, "a new pooling over the transformer (null: the checkpoint's, else mean, lasttoken for LLMs)"
    )
    query_prompt: str = key("", "text put before every query (saved as the model's query prompt)")
    passage_prompt: str = key("", "text put before every document (saved as the model's document prompt)")
    gather_across_devices: bool = key(False, "infonce: negatives from every device's batch, not only this one's")
    teacher_vectors: str = key("", "distill: .npy of teacher vectors, one row per line of train_data")
    distill_weights: list[float] = key(
        doc="distill: weights of the cosine, similarity-matrix and margin terms", factory=lambda: [10.0, 200.0, 20.0]
    )
    inference_max_length: int | None = key(
        None, "max_seq_length saved with the model (null: the longer of max_length and the base model's own)"
    )

    def validate(self) -> None:
        super().validate()
        EMBEDDING_LOSSES[self.loss].check_group_size(self.train_group_size)
        if self.mrl_weights and len(self.mrl_weights) != len(self.mrl_dims):
            raise ConfigError(
                f"mrl_weights has {len(self.mrl_weights)} values for {len(self.mrl_dims)} mrl_dims; give one per dim"
            )
        if EMBEDDING_LOSSES[self.loss].data == "teacher_vectors" and not self.teacher_vectors:
            raise ConfigError(f"loss={self.loss} needs teacher_vectors (an .npy file aligned with train_data)")
        for name in ("temperature", "teacher_temperature", "mrl_dims"):
            require(self, name, above=0)
        for name in ("mrl_weights", "distill_weights"):
            require(self, name, at_least=0)
        if self.inference_max_length is not None:
            require(self, "inference_max_length", above=0)
        if len(self.distill_weights) != 3:
            raise ConfigError("distill_weights takes three weights: cosine, similarity matrix, margin")


def build_embedding_model(config: EmbeddingTrainConfig) -> EmbeddingModel:
    """The embedding family to train (its ``.model``, a ``SentenceTransformer``), from
    :meth:`EmbeddingModel.for_training`, with LoRA layers when the config asks for them."""
    family = EmbeddingModel.for_training(
        config.model_name_or_path,
        max_length=config.max_length,
        pooling=config.pooling,
        query_prompt=config.query_prompt,
        document_prompt=config.passage_prompt,
    )
    # The LoRA layers go into auto_model in place; sentence-transformers keeps calling the base model.
    add_lora(family, family.model[0].auto_model, config, family.peft_task_type)
    return family


class EmbeddingTrainingRun(TrainingRun):
    """``rag-retrieval-train embedding``: data + loss + model on the shared stack."""

    name: ClassVar[str] = "embedding"
    config: EmbeddingTrainConfig

    def build_family(self) -> EmbeddingModel:
        return build_embedding_model(self.config)

    def build_train_dataset(self, model: torch.nn.Module) -> Any:
        from .data import load_distillation_data

        c = self.config
        kind = EMBEDDING_LOSSES[c.loss].data
        if kind == "teacher_vectors":
            return load_distillation_data(c.train_data, c.teacher_vectors)
        return self.text_groups(
            kind, model.tokenizer, c.max_length, query_prompt=c.query_prompt, passage_prompt=c.passage_prompt
        )

    def build_loss(self, model: torch.nn.Module) -> torch.nn.Module:
        from .losses import MatryoshkaLoss

        c = self.config
        loss = EMBEDDING_LOSSES[c.loss].build(c, model)
        if c.mrl_dims:
            loss = MatryoshkaLoss(model, loss, matryoshka_dims=c.mrl_dims, matryoshka_weights=c.mrl_weights or None)
        return loss

    def trainer_classes(self) -> tuple[type, type]:
        return EmbeddingTrainer, SentenceTransformerTrainingArguments

    def save_model(self, trainer: Any, model: torch.nn.Module) -> None:
        if not trainer.is_world_process_zero():
            return
        merged_model = finish_lora(self.family, self.config)
        if merged_model is not None:
            model[0].auto_model = merged_model
        # saved for inference at its own length, not at the training cut (see inference_length.py)
        model.max_seq_length = inference_length(
            self.config.inference_max_length,
            self.config.max_length,
            self.config.model_name_or_path,
            model[0].auto_model.config,
        )
        model.save(str(self.output_dir), create_model_card=False)  # ours: model_card.py

    def metadata(self, model: torch.nn.Module, loss: torch.nn.Module) -> dict[str, Any]:
        pooling = next((m.get_config_dict().get("pooling_mode") for m in model if hasattr(m, "pooling_mode")), None)
        return {
            "pooling": pooling,
            "normalized": any(type(m).__name__ == "Normalize" for m in model),
            "embedding_dim": model.get_embedding_dimension(),
            "max_length": model.max_seq_length,
            "training_max_length": self.config.max_length,
            "matryoshka_dims": sorted(self.config.mrl_dims, reverse=True) or None,
            "prompts": {"query": self.config.query_prompt, "document": self.config.passage_prompt},
            "base_model": self.config.model_name_or_path,
            "loss": self.config.loss,
        }


def train_embedding(config: EmbeddingTrainConfig) -> Any:
    """Run the embedding trainer; returns the output folder."""
    return EmbeddingTrainingRun(config).run()
