"""LoRA for every trainer: the config keys, and adding the adapters to a model and merging them on save."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .config import key, require


@dataclass
class LoRAOptions:
    """The LoRA keys of a trainer's config (a mixin: ``class XTrainConfig(LoRAOptions, TrainConfig)``).

    ``lora: true`` trains low-rank adapters (rank ``lora_r``, scale ``lora_alpha / lora_r``,
    ``lora_dropout``) on ``lora_target_modules`` (default: peft's choice for the architecture)
    instead of every weight; ``merge_lora`` folds them into the saved weights, so the checkpoint
    loads as a plain model (false: the adapter is saved as peft writes it).
    """

    lora: bool = key(False, "train low-rank adapters instead of every weight")
    lora_r: int = key(16, "LoRA rank")
    lora_alpha: int = key(32, "LoRA scale numerator: the adapters are scaled by lora_alpha / lora_r")
    lora_dropout: float = key(0.05, "dropout on the LoRA inputs, in [0, 1)")
    lora_target_modules: list[str] = key(
        doc="module names to adapt (empty: peft's choice for the architecture)", factory=list
    )
    merge_lora: bool = key(True, "fold the adapters into the saved weights (false: save the adapter as peft writes it)")

    def validate(self) -> None:
        super().validate()  # type: ignore[misc]  # the TrainConfig after this mixin
        for name in ("lora_r", "lora_alpha"):
            require(self, name, above=0)
        require(self, "lora_dropout", at_least=0, below=1, what="the probability of dropping a LoRA input")


def add_lora(owner: Any, module: torch.nn.Module, options: LoRAOptions, task: str | None) -> None:
    """With ``options.lora``, inject LoRA layers into ``module`` in place (peft freezes the rest).

    ``owner`` (the family object being trained) keeps the ``PeftModel`` for :func:`finish_lora`;
    the caller keeps calling ``module``. ``task`` is a peft ``TaskType`` name (the family's
    ``peft_task_type``: ``"SEQ_CLS"``, ``"CAUSAL_LM"``, ``"FEATURE_EXTRACTION"``).
    """
    if not options.lora:
        return
    from peft import LoraConfig, TaskType, get_peft_model

    if task is None:
        raise ValueError(f"lora: {type(owner).__name__} names no peft task type for its head")
    config = LoraConfig(
        task_type=TaskType[task],
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=options.lora_target_modules or None,
    )
    owner.peft_model = get_peft_model(module, config)


def lora_adapter(owner: Any) -> torch.nn.Module | None:
    """The ``PeftModel`` :func:`add_lora` gave ``owner`` (saved as peft writes an adapter), if any."""
    return getattr(owner, "peft_model", None)


def finish_lora(owner: Any, options: LoRAOptions) -> torch.nn.Module | None:
    """With ``merge_lora``, the base model with the LoRA weights folded in (in place), for the caller
    to put back where it was; ``None`` without LoRA or without merging (the adapter stays)."""
    peft_model = lora_adapter(owner)
    if peft_model is None or not options.merge_lora:
        return None
    del owner.peft_model
    return peft_model.merge_and_unload()
