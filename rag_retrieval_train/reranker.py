"""The reranker trainer: cross-encoders and LLM rerankers (yes-token or 1-logit head) with
pointwise, pairwise, listwise and distillation losses.

The model being trained is the core layer's own family object (``CrossEncoderReranker``,
``LLMReranker``, ``LLMClassifierReranker``) around a freshly built model: pairs are encoded
and scored in training exactly as ``Reranker(path)`` encodes and scores them afterwards (same
truncation, same prompt template, same scoring token), and the output folder is a plain
``transformers`` checkpoint that sentence-transformers' ``CrossEncoder``, FlagEmbedding's
``FlagReranker``/``FlagLLMReranker`` and ``Reranker(path)`` load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from transformers import PreTrainedModel, Trainer, TrainingArguments

from rag_retrieval_integrations.core.models.base import BaseReranker
from rag_retrieval_integrations.core.models.checkpoint import (
    CheckpointInfo,
    is_decoder_only,
    read_checkpoint,
    write_metadata,
)
from rag_retrieval_integrations.core.models.factory import accepted_options
from rag_retrieval_integrations.core.models.llm_inputs import PairPromptTemplate
from rag_retrieval_integrations.core.models.prompt_formats import get_prompt_format
from rag_retrieval_integrations.core.models.registry import get_model_class, reranker_backbones

from .config import ConfigError, TrainConfig, key, require
from .eval_during_training import EvaluatingTrainer
from .lora import LoRAOptions, add_lora, finish_lora, lora_adapter
from .losses.reranker_specs import RERANKER_LOSSES
from .losses.specs import choices_summary
from .trainer import TrainingRun

logger = logging.getLogger(__name__)

Backbone = Literal[("auto", *reranker_backbones())]  # type: ignore[valid-type]  # the families that say they are
# every list of loss names derives from the one table in losses/reranker_specs.py
LOSSES = tuple(RERANKER_LOSSES)
RerankerLoss = Literal[LOSSES]  # type: ignore[valid-type]  # the config's choices, for validation and --list-keys


@dataclass
class RerankerTrainConfig(LoRAOptions, TrainConfig):
    """Options of ``rag-retrieval-train reranker`` (see docs/training-keys.md for each).

    ``batch_size`` counts pairs for the pointwise losses and queries for the group losses, each
    query bringing ``train_group_size`` documents.

    ``eval_data`` is a reranking set as ``rag-retrieval-eval rerank`` reads it (JSONL
    ``{"query", "candidates": [{"content", "label"}]}`` or a WikiQA TSV), ranked by the model in
    training; ``metric_for_best_model`` is one of ``MAP`` (the default), ``MRR@10``, ``nDCG@10``.
    """

    EVAL_TASK: ClassVar[str] = "rerank"

    backbone: Backbone = key(
        "auto", "the family trained and saved: auto is llm (yes-token) for a decoder, cross-encoder otherwise"
    )
    loss: RerankerLoss = key(LOSSES[0], choices_summary(RERANKER_LOSSES))
    train_group_size: int = key(8, "documents per query for the group losses: 1 positive + n-1 others")
    temperature: float = key(1.0, "softmax temperature of the listwise losses")
    max_label: float | None = key(None, "labels are divided by this (null: the largest label in the data)")
    pos_weight: float = key(1.0, "bce: weight of the positive term")
    label_weight: float = key(0.5, "distill_kl_ce: weight of the label term, in [0, 1] (the teacher's is 1 minus it)")
    prompt_format: str | None = key(
        None,
        "LLM backbones: the prompt format trained in and saved with the model, by name (available_prompt_formats(): "
        "bge-reranker-v2-gemma, qwen3-reranker, ...); null: the base model's saved format, else bge-reranker-v2-gemma",
    )
    prompt_template: dict[str, Any] = key(
        doc="LLM backbones: PairPromptTemplate fields instead of a named format (saved with the model)", factory=dict
    )
    instruction: str | None = key(None, "LLM backbones: the task line of a format with one (qwen3-reranker's)")
    yes_token: str | None = key(None, "llm backbone: replaces the format's answer token (null: the format's)")

    def validate(self) -> None:
        super().validate()
        spec = RERANKER_LOSSES[self.loss]
        if not spec.pointwise:
            spec.check_group_size(self.train_group_size)
        for name in ("temperature", "pos_weight"):
            require(self, name, above=0)
        if self.max_label is not None:
            require(self, "max_label", above=0)
        if not 0.0 <= self.label_weight <= 1.0:
            raise ConfigError(f"label_weight must be in [0, 1], got {self.label_weight!r}")
        try:
            PairPromptTemplate.from_dict(self.prompt_template)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"prompt_template: {e}") from None
        if self.prompt_format is not None and self.prompt_template:
            raise ConfigError("give prompt_format or prompt_template, not both")
        if self.prompt_format is not None:
            try:
                fmt = get_prompt_format(self.prompt_format)
                if self.instruction is not None:
                    fmt.with_instruction(self.instruction)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"prompt_format: {e}") from None


def resolve_backbone(config: RerankerTrainConfig, info: CheckpointInfo) -> str:
    """The family the model trains as (and is saved as)."""
    if config.backbone != "auto":
        return config.backbone
    return "llm" if is_decoder_only(info.config or {}) else "cross-encoder"


def build_reranker(config: RerankerTrainConfig) -> BaseReranker:
    """The core family object to train: the backbone's ``for_training`` on the checkpoint (the family
    builds its scoring head; see each family), with LoRA layers when the config asks for them."""
    info = read_checkpoint(config.model_name_or_path)
    family = get_model_class(resolve_backbone(config, info))
    wanted = {
        "prompt_format": config.prompt_format,
        "prompt_template": config.prompt_template or None,
        "instruction": config.instruction,
        "yes_token": config.yes_token,
    }
    options = {name: value for name, value in wanted.items() if name in accepted_options(family)}
    scorer = family.for_training(info, max_length=config.max_length, **options)
    # The LoRA layers go into scorer.model in place (and, for SEQ_CLS, the new head is made
    # trainable); the family keeps calling its own model, the PeftModel is kept to merge on save.
    add_lora(scorer, scorer.model, config, family.peft_task_type)
    return scorer


class PairScorer(torch.nn.Module):
    """A core family as an ``nn.Module`` for ``transformers.Trainer``: ``forward`` is the
    family's own :meth:`~BaseReranker.forward_scores`, so DDP, DeepSpeed and FSDP wrap the
    same forward pass that inference runs."""

    def __init__(self, scorer: BaseReranker) -> None:
        super().__init__()
        self.model = scorer.model
        self.scorer = scorer  # not a Module: a plain attribute, outside state_dict and the module tree

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def _no_split_modules(self) -> list[str]:
        """The wrapped model's layer classes: accelerate's FSDP auto-wrap reads them from the top module."""
        return list(getattr(self.model, "_no_split_modules", None) or [])

    @property
    def _keys_to_ignore_on_save(self) -> list[str]:
        """The names checkpoints leave out (second names of tied tensors, see
        :func:`one_name_per_tensor`): ``Trainer`` re-ties them when exactly these are missing on resume."""
        state = self.state_dict()
        return sorted(set(state) - set(one_name_per_tensor(state)))

    def tie_weights(self) -> None:
        self.model.tie_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        return self.scorer.forward_scores(batch)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)


class PairCollator:
    """Rows -> the family's padded batch plus ``labels``: ``(pairs,)`` for pointwise rows
    (``query``, ``document``, ``label``), ``(queries, group_size)`` for group rows
    (``query``, ``docs``, ``labels``)."""

    def __init__(self, scorer: BaseReranker) -> None:
        self.scorer = scorer

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if "docs" in rows[0]:
            queries = [r["query"] for r in rows for _ in r["docs"]]
            docs = [d for r in rows for d in r["docs"]]
            labels = torch.tensor([r["labels"] for r in rows], dtype=torch.float32)
        else:
            queries = [r["query"] for r in rows]
            docs = [r["document"] for r in rows]
            labels = torch.tensor([r["label"] for r in rows], dtype=torch.float32)
        return {**self.scorer.collate(queries, docs), "labels": labels}


def one_name_per_tensor(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` without the second and later names of a tensor that shares its memory with
    an earlier one (same storage, offset, shape and strides: tied weights)."""
    kept: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = set()
    for name, tensor in state_dict.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        if tensor.device.type != "meta" and key in seen:
            continue
        seen.add(key)
        kept[name] = tensor
    return kept


class RerankerTrainer(EvaluatingTrainer, Trainer):
    """``transformers.Trainer`` whose loss is ``loss(scores, labels)`` on the model's scores (and whose
    ``evaluate()`` runs ``eval_data``'s evaluator, :class:`EvaluatingTrainer`)."""

    def __init__(self, *args: Any, loss: torch.nn.Module, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss = loss

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        # The trained module is a PairScorer, not a PreTrainedModel, so transformers saves its
        # state dict with safetensors' save_file, which refuses two names for one tensor: a
        # decoder whose LM head is tied to its input embeddings (SmolLM2, Qwen2-0.5B, Gemma)
        # crashed at its first checkpoint. Saving one name per tensor is lossless: resuming
        # loads non-strictly and the tied parameter is one object. (The final model is saved by
        # the family with save_pretrained, which handles ties itself.)
        if state_dict is None and not isinstance(self.model, PreTrainedModel):
            state_dict = self.model.state_dict()
        super()._save(output_dir, state_dict=None if state_dict is None else one_name_per_tensor(state_dict))
        if output_dir is not None and isinstance(self.model, PairScorer):
            describe_checkpoint(output_dir, self.model.scorer)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        scores = model(**inputs)
        scores = scores.view(labels.shape)
        loss = self.loss(scores, labels)
        return (loss, scores) if return_outputs else loss


def describe_checkpoint(folder: str, scorer: BaseReranker) -> None:
    """Write what makes an intermediate ``checkpoint-N`` loadable by ``Reranker(path)`` and the eval CLI
    next to its weights: ``config.json``, the tokenizer and our metadata (the family, its options, and
    the ``model.`` prefix the training wrapper gives the weights' names, which loading maps away).
    The weights stay as ``Trainer`` wrote them, so resuming reads them unchanged. A LoRA run's
    weights are the adapter inside the wrapper: its metadata says so, and loading refuses it clearly."""
    lora = lora_adapter(scorer) is not None
    scorer.model.config.save_pretrained(folder)
    scorer.tokenizer.save_pretrained(folder)
    write_metadata(
        folder,
        scorer.model_type,
        reranker_options=scorer.reranker_options(),
        intermediate_checkpoint={"weights_prefix": "model.", "lora": lora},
    )


def build_reranker_loss(config: RerankerTrainConfig) -> torch.nn.Module:
    """The ``loss`` of the config, built from its :data:`RERANKER_LOSSES` entry."""
    return RERANKER_LOSSES[config.loss].build(config, None)


class RerankerTrainingRun(TrainingRun):
    """``rag-retrieval-train reranker``: data + loss + model on the shared stack."""

    name: ClassVar[str] = "reranker"
    config: RerankerTrainConfig

    def __init__(self, config: RerankerTrainConfig) -> None:
        super().__init__(config)
        self.label_scale: float | None = None
        """What graded labels are divided by (:meth:`build_train_dataset`; saved in the metadata)."""

    def build_family(self) -> BaseReranker:
        return build_reranker(self.config)

    def trainable(self, family: BaseReranker) -> torch.nn.Module:
        return PairScorer(family)

    def build_train_dataset(self, model: torch.nn.Module) -> Any:
        from .data.reranker_data import group_view, label_scale, load_reranker_examples, pointwise_view

        c = self.config
        spec = RERANKER_LOSSES[c.loss]
        examples = load_reranker_examples(self.training_file())
        target = "scores" if spec.teacher_scores else "labels"
        self.label_scale = label_scale(examples, c.max_label) if target == "labels" else None
        if spec.pointwise:
            return pointwise_view(examples, target, scale=self.label_scale or 1.0)
        return self.epoch_resampled(
            group_view,
            examples,
            target,
            c.train_group_size,
            seed=c.seed,
            scale=self.label_scale or 1.0,
            by_label=spec.labelled_groups,
        )

    def training_file(self) -> str:
        """The file the model trains on: ``train_data`` (the distill student trains on the teacher's scores)."""
        return self.config.train_data

    def build_loss(self, model: torch.nn.Module) -> torch.nn.Module:
        return build_reranker_loss(self.config)

    def trainer_classes(self) -> tuple[type, type]:
        return RerankerTrainer, TrainingArguments

    def trainer_kwargs(self, model: torch.nn.Module) -> dict[str, Any]:
        return {"data_collator": PairCollator(self.family)}

    def extra_training_arguments(self) -> dict[str, Any]:
        # the rows carry text, turned into tensors by the collator, not by the Trainer
        return {"remove_unused_columns": False}

    def save_model(self, trainer: Any, model: torch.nn.Module) -> None:
        state_dict = None
        if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
            # every process takes part in gathering the sharded weights
            full = trainer.accelerator.get_state_dict(trainer.model_wrapped)
            state_dict = {k.removeprefix("model."): v for k, v in full.items()} if full is not None else None
        if not trainer.is_world_process_zero():
            return
        scorer = self.family
        merged_model = finish_lora(scorer, self.config)
        if merged_model is not None:
            scorer.model = merged_model
        hf_model = lora_adapter(scorer) or scorer.model
        hf_model.save_pretrained(str(self.output_dir), state_dict=state_dict)
        scorer.tokenizer.save_pretrained(str(self.output_dir))

    def metadata(self, model: torch.nn.Module, loss: torch.nn.Module) -> dict[str, Any]:
        return {
            "reranker_options": self.family.reranker_options(),
            "score": "raw logit; normalize=True applies a sigmoid",
            "base_model": self.config.model_name_or_path,
            "loss": self.config.loss,
            "label_scale": self.label_scale,
            "lora": {"r": self.config.lora_r, "merged": self.config.merge_lora} if self.config.lora else None,
        }


def train_reranker(config: RerankerTrainConfig) -> Any:
    """Run the reranker trainer; returns the output folder."""
    return RerankerTrainingRun(config).run()
