"""LoRA for every trainer: the config keys, and adding the adapters to a model and merging them on save."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .config import require


@dataclass
class LoRAOptions:
    """The LoRA keys of a trainer's config (a mixin: ``class XTrainConfig(LoRAOptions, TrainConfig)``).

    ``lora: true`` trains low-rank adapters (rank ``lora_r``, scale ``lora_alpha / lora_r``,
    ``lora_dropout``) on ``lora_target_modules`` (default: peft's choice for the architecture)
    instead of every weight; ``merge_lora`` folds them into the saved weights, so the checkpoint
    loads as a plain model (false: the adapter is saved as peft writes it).
    """

    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=list)
    merge_lora: bool = True

    def validate(self) -> None:
        super().validate()  # type: ignore[misc]  # the TrainConfig after this mixin
        for name in ("lora_r", "lora_alpha"):
            require(self, name, above=0)
        require(self, "lora_dropout", at_least=0, below=1, what="the probability of dropping a LoRA input")


def add_lora(module: torch.nn.Module, options: LoRAOptions, task: str) -> Any:
    """Inject LoRA layers into ``module`` in place (peft freezes the rest) and return the ``PeftModel``.

    ``task`` is a peft ``TaskType`` name (``"SEQ_CLS"``, ``"CAUSAL_LM"``, ``"FEATURE_EXTRACTION"``).
    The caller keeps calling ``module``; the returned model is only for :func:`merged` on save.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType[task],
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=options.lora_target_modules or None,
    )
    return get_peft_model(module, config)


def merged(peft_model: Any) -> torch.nn.Module:
    """The base model with the LoRA weights folded in (in place)."""
    return peft_model.merge_and_unload()
