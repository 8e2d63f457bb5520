"""The embedding trainer: bi-encoders (BERT-style or decoder LLMs) with InfoNCE, Matryoshka,
LLM-preference or distillation losses, written as sentence-transformers folders."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, Literal

import torch

from rag_retrieval_integrations.core.models.checkpoint import is_decoder_only, read_checkpoint
from rag_retrieval_integrations.core.text.long_text import clip_for_truncation

from .config import ConfigError, TrainConfig, require
from .inference_length import inference_length
from .lora import LoRAOptions, add_lora, merged
from .trainer import TrainingRun

logger = logging.getLogger(__name__)


@dataclass
class EmbeddingTrainConfig(LoRAOptions, TrainConfig):
    """Options of ``rag-retrieval-train embedding`` (each in docs/training.md and docs/training-keys.md)."""

    loss: Literal["infonce", "preference", "distill"] = "infonce"
    temperature: float = 0.02
    teacher_temperature: float = 1.0
    train_group_size: int = 2  # documents per query: 1 positive + (n - 1) hard negatives, or n scored ones
    mrl_dims: list[int] = field(default_factory=list)
    mrl_weights: list[float] = field(default_factory=list)
    pooling: Literal["mean", "cls", "lasttoken"] | None = None  # None: mean for encoders, lasttoken for LLMs
    query_prompt: str = ""
    passage_prompt: str = ""
    gather_across_devices: bool = False
    teacher_vectors: str = ""  # distill: .npy of teacher vectors, one row per line of train_data
    distill_weights: list[float] = field(default_factory=lambda: [10.0, 200.0, 20.0])  # cosine, sim-matrix, margin
    inference_max_length: int | None = None  # saved max_seq_length; None: max(max_length, the base model's own)

    def validate(self) -> None:
        super().validate()
        if self.train_group_size < 1:
            raise ConfigError(f"train_group_size must be at least 1, got {self.train_group_size}")
        if self.mrl_weights and len(self.mrl_weights) != len(self.mrl_dims):
            raise ConfigError(
                f"mrl_weights has {len(self.mrl_weights)} values for {len(self.mrl_dims)} mrl_dims; give one per dim"
            )
        if self.loss == "distill" and not self.teacher_vectors:
            raise ConfigError("loss=distill needs teacher_vectors (an .npy file aligned with train_data)")
        for name in ("temperature", "teacher_temperature", "mrl_dims"):
            require(self, name, above=0)
        for name in ("mrl_weights", "distill_weights"):
            require(self, name, at_least=0)
        if self.inference_max_length is not None:
            require(self, "inference_max_length", above=0)
        if len(self.distill_weights) != 3:
            raise ConfigError("distill_weights takes three weights: cosine, similarity matrix, margin")


def build_embedding_model(config: EmbeddingTrainConfig) -> Any:
    """A ``SentenceTransformer`` to train: an existing one, or transformer + pooling + Normalize."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer

    info = read_checkpoint(config.model_name_or_path)
    if info.modules is not None and config.pooling is None:
        model = SentenceTransformer(info.path, device="cpu")
        model.max_seq_length = config.max_length
    else:
        decoder = is_decoder_only(info.config or {})
        pooling = config.pooling or ("lasttoken" if decoder else "mean")
        transformer = Transformer(info.path, max_seq_length=config.max_length)
        if decoder:
            _append_eos(transformer.tokenizer)
        modules = [transformer, Pooling(transformer.get_embedding_dimension(), pooling), Normalize()]
        model = SentenceTransformer(modules=modules, device="cpu")
    if config.query_prompt or config.passage_prompt:
        model.prompts = {**model.prompts, "query": config.query_prompt, "document": config.passage_prompt}
    if config.lora:
        # The LoRA layers go into auto_model in place; sentence-transformers keeps calling the base
        # model, and the PeftModel is kept to merge on save. (Stored in __dict__: as a registered
        # submodule it would become a stage of the model's forward.)
        model.__dict__["_rag_retrieval_peft"] = add_lora(model[0].auto_model, config, "FEATURE_EXTRACTION")
    return model


def _append_eos(tokenizer: Any) -> None:
    """Make the tokenizer end every text with EOS, the token whose state last-token pooling reads.

    Set in the fast tokenizer's own post-processor, so the saved checkpoint appends it at
    inference too, in sentence-transformers and in our embedding family alike.
    """
    from tokenizers import processors

    eos = tokenizer.eos_token
    if eos is None:
        raise ConfigError("last-token pooling needs a tokenizer with an eos token")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, tokenizer.eos_token_id)]
    )


class EmbeddingTrainingRun(TrainingRun):
    """``rag-retrieval-train embedding``: data + loss + model on the shared stack."""

    name: ClassVar[str] = "embedding"
    model_type: ClassVar[str] = "embedding"
    config: EmbeddingTrainConfig

    def build_model(self) -> torch.nn.Module:
        return build_embedding_model(self.config)

    def build_train_dataset(self, model: torch.nn.Module) -> Any:
        from .data import EpochResampleCallback, load_distillation_data, load_examples, training_view

        c = self.config
        if c.loss == "distill":
            return load_distillation_data(c.train_data, c.teacher_vectors)
        kind = "preference" if c.loss == "preference" else "infonce"
        self._resampler = EpochResampleCallback()
        return training_view(
            load_examples(c.train_data),
            kind=kind,
            group_size=c.train_group_size,
            seed=c.seed,
            query_prompt=c.query_prompt,
            passage_prompt=c.passage_prompt,
            epochs=self._resampler,
            clip=partial(clip_for_truncation, model.tokenizer, max_tokens=c.max_length),
        )

    def build_loss(self, model: torch.nn.Module) -> torch.nn.Module:
        from .losses import EmbeddingDistillationLoss, InfoNCELoss, MatryoshkaLoss, PreferenceKLLoss

        c = self.config
        if c.loss == "infonce":
            loss = InfoNCELoss(model, temperature=c.temperature, gather_across_devices=c.gather_across_devices)
        elif c.loss == "preference":
            loss = PreferenceKLLoss(model, temperature=c.temperature, teacher_temperature=c.teacher_temperature)
        else:
            cosine, matrix, margin = c.distill_weights
            loss = EmbeddingDistillationLoss(
                model, cosine_weight=cosine, similarity_weight=matrix, margin_weight=margin
            )
        if c.mrl_dims:
            loss = MatryoshkaLoss(model, loss, matryoshka_dims=c.mrl_dims, matryoshka_weights=c.mrl_weights or None)
        return loss

    def trainer_classes(self) -> tuple[type, type]:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

        return SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    def save_model(self, trainer: Any, model: torch.nn.Module) -> None:
        if not trainer.is_world_process_zero():
            return
        peft_model = model.__dict__.get("_rag_retrieval_peft")
        if peft_model is not None and self.config.merge_lora:
            # merge_and_unload folds the LoRA weights into the base layers, in place
            model[0].auto_model = merged(peft_model)
            del model.__dict__["_rag_retrieval_peft"]
        # saved for inference at its own length, not at the training cut (see inference_length.py)
        model.max_seq_length = inference_length(
            self.config.inference_max_length,
            self.config.max_length,
            self.config.model_name_or_path,
            model[0].auto_model.config,
        )
        model.save(str(self.output_dir))

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
