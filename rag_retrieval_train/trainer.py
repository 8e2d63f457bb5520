"""The one training stack every trainer runs on.

A trainer is data + loss + model: it subclasses :class:`TrainingRun` and says how to build
those three. Running, saving, resuming, mixed precision, gradient accumulation and
checkpointing, TensorBoard logs, progress bars and seeding come from ``transformers.Trainer``
(through the matching sentence-transformers trainer); this module adds what every run of ours
ends with: the model saved in its drop-in format, our metadata file, the resolved config and a
loss curve PNG.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import TrainerCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint

from rag_retrieval_integrations.core.checkpoint import write_metadata

from .config import TrainConfig, save_config

logger = logging.getLogger(__name__)

LOSS_CURVE_FILE = "loss_curve.png"


def plot_loss_curve(log_history: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Training loss against step, from ``trainer.state.log_history``; ``None`` if nothing was logged."""
    points = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    if not points:
        logger.warning("no training loss was logged (logging_steps larger than the run?): no loss curve written")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot([s for s, _ in points], [v for _, v in points], marker="o" if len(points) < 30 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


class TrainingRun(ABC):
    """One training run: subclasses build the model, the training data and the loss."""

    name: ClassVar[str]  # the CLI sub-command
    # what ``Reranker`` loads the result as (written to our metadata); a class value or set in build_model
    model_type: str

    def __init__(self, config: TrainConfig) -> None:
        config.validate()
        self.config = config
        self.output_dir = Path(config.output_dir)

    # ---- what a trainer implements ------------------------------------------------------

    @abstractmethod
    def build_model(self) -> torch.nn.Module: ...

    @abstractmethod
    def build_train_dataset(self, model: torch.nn.Module) -> Any: ...

    @abstractmethod
    def build_loss(self, model: torch.nn.Module) -> torch.nn.Module: ...

    @abstractmethod
    def trainer_classes(self) -> tuple[type, type]:
        """The (trainer, training-arguments) classes, e.g. sentence-transformers' for embeddings."""

    def callbacks(self) -> list[TrainerCallback]:
        return []

    def metadata(self, model: torch.nn.Module, loss: torch.nn.Module) -> dict[str, Any]:
        """Fields of our metadata file besides ``model_type`` and the training config."""
        return {}

    def save_model(self, trainer: Any, model: torch.nn.Module) -> None:
        """Write the model in its drop-in format. Called on every process, so that weights
        sharded by ZeRO-3 or FSDP can be gathered collectively; only the main process writes."""
        trainer.save_model(str(self.output_dir))

    def trainer_kwargs(self, model: torch.nn.Module) -> dict[str, Any]:
        """Extra keyword arguments for the trainer class (e.g. a ``data_collator``)."""
        return {}

    def extra_training_arguments(self) -> dict[str, Any]:
        """Extra fields of the training-arguments class."""
        return {}

    # ---- the run --------------------------------------------------------------------------

    def training_arguments(self, args_class: type) -> Any:
        c = self.config
        return args_class(
            output_dir=str(self.output_dir),
            num_train_epochs=c.epochs,
            max_steps=c.max_steps,
            per_device_train_batch_size=c.batch_size,
            gradient_accumulation_steps=c.gradient_accumulation_steps,
            learning_rate=c.learning_rate,
            warmup_steps=c.warmup_ratio,  # transformers >= 5 reads a float < 1 as a ratio
            weight_decay=c.weight_decay,
            lr_scheduler_type=c.lr_scheduler_type,
            optim=c.optim,
            max_grad_norm=c.max_grad_norm,
            seed=c.seed,
            data_seed=c.seed,
            fp16=c.mixed_precision == "fp16",
            bf16=c.mixed_precision == "bf16",
            save_strategy="steps" if c.save_steps > 0 else "epoch",
            save_steps=c.save_steps if c.save_steps > 0 else 500,
            save_total_limit=c.save_total_limit,
            logging_steps=c.logging_steps,
            report_to=c.report_to,
            dataloader_num_workers=c.dataloader_num_workers,
            disable_tqdm=c.disable_progress_bar,
            # Without use_cpu, transformers runs each process of a CPU-only multi-process launch
            # as an independent single-process run (no gradient sync): gloo DDP needs it.
            use_cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available()),
            **self._checkpointing_arguments(args_class),
            **self.extra_training_arguments(),
        )

    def _checkpointing_arguments(self, args_class: type) -> dict[str, Any]:
        if not self.config.gradient_checkpointing:
            return {}
        # transformers renamed gradient_checkpointing to activation_checkpointing (5.x)
        fields = getattr(args_class, "__dataclass_fields__", {})
        return {"activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": True}

    def resume_checkpoint(self) -> str | None:
        resume = self.config.resume
        if resume is False:
            return None
        if resume is True:
            last = get_last_checkpoint(str(self.output_dir)) if self.output_dir.is_dir() else None
            if last is None:
                raise FileNotFoundError(f"resume=true but {str(self.output_dir)!r} holds no checkpoint-* folder")
            return last
        if not Path(resume).is_dir():
            raise FileNotFoundError(f"resume checkpoint {resume!r} does not exist")
        return str(resume)

    def run(self) -> Path:
        """Train, then write the model, our metadata, the resolved config and the loss curve."""
        set_seed(self.config.seed)
        model = self.build_model()
        train_dataset = self.build_train_dataset(model)
        loss = self.build_loss(model)
        trainer_class, args_class = self.trainer_classes()
        trainer = trainer_class(
            model=model,
            args=self.training_arguments(args_class),
            train_dataset=train_dataset,
            loss=loss,
            callbacks=self.callbacks(),
            **self.trainer_kwargs(model),
        )
        trainer.train(resume_from_checkpoint=self.resume_checkpoint())
        self.save_model(trainer, model)
        if trainer.is_world_process_zero():
            write_metadata(
                self.output_dir,
                self.model_type,
                **self.metadata(model, loss),
                training={
                    "trainer": self.name,
                    "steps": trainer.state.global_step,
                    "epochs": _round(trainer.state.epoch),
                },
            )
            save_config(self.config, self.output_dir, self.name)
            plot_loss_curve(trainer.state.log_history, self.output_dir / LOSS_CURVE_FILE, f"{self.name} training loss")
        self.trainer = trainer
        return self.output_dir


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)
