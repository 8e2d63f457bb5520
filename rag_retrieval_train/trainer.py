"""The one training stack every trainer runs on.

A trainer is data + loss + model: it subclasses :class:`TrainingRun` and says how to build
those three. Running, saving, resuming, mixed precision, gradient accumulation and
checkpointing, TensorBoard logs, progress bars and seeding come from ``transformers.Trainer``
(through the matching sentence-transformers trainer); this module adds what every run of ours
ends with: the model saved in its drop-in format, our metadata file, the resolved config, a
loss curve PNG and a model card (``README.md``, :mod:`.model_card`); then, unless ``keep_checkpoints``,
it deletes the ``checkpoint-*`` folders, which only a run that did not finish needs (to resume).
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import TrainerCallback, set_seed

from rag_retrieval_integrations.core.models.checkpoint import METADATA_FILE, write_metadata

from . import model_card, run_folder
from .config import RESOLVED_CONFIG_FILE, ConfigError, TrainConfig, config_payload, save_config
from .eval_during_training import (
    EvaluatingTrainer,
    TrainingEvaluator,
    check_unsharded,
    evaluation_arguments,
    load_eval_set,
)
from .fsdp import configure_fsdp_wrap
from .loss_curve import LOSS_CURVE_FILE, LogLastStep, plot_loss_curve
from .run_context import naming_key, progress_bars

logger = logging.getLogger(__name__)


class TrainingRun(ABC):
    """One training run: subclasses build the model, the training data and the loss."""

    name: ClassVar[str]  # the CLI sub-command

    def __init__(self, config: TrainConfig) -> None:
        config.validate()
        self.config = config
        self.output_dir = Path(config.output_dir)
        # What the steps of :meth:`run` build, in order, for the steps after them (each is set once):
        self.family: Any = None
        """The core family object being trained (:meth:`build_model`); evaluation and saving use it."""
        self.resampler: Any = None
        """The epoch resampler of the training view (:meth:`epoch_resampled`), handed to the trainer."""

    @property
    def model_type(self) -> str:
        """What ``Reranker`` loads the result as (written to our metadata): the trained family's."""
        if self.family is None:
            raise RuntimeError("the model is not built yet (build_model)")
        return str(self.family.model_type)

    # ---- what a trainer implements ------------------------------------------------------

    @abstractmethod
    def build_family(self) -> Any:
        """The core family object to train (a ``BaseReranker`` from its ``for_training``)."""

    def trainable(self, family: Any) -> torch.nn.Module:
        """What the Trainer trains and FSDP wraps: the family's model (the reranker trainers wrap it)."""
        return family.model

    def build_model(self) -> torch.nn.Module:
        """:meth:`build_family`, kept as :attr:`family`; its ``model_type`` is what the result is saved as."""
        self.family = self.build_family()
        return self.trainable(self.family)

    @abstractmethod
    def build_train_dataset(self, model: torch.nn.Module) -> Any: ...

    @abstractmethod
    def build_loss(self, model: torch.nn.Module) -> torch.nn.Module: ...

    @abstractmethod
    def trainer_classes(self) -> tuple[type, type]:
        """The (trainer, training-arguments) classes: a trainer class of the trainer's own, with
        :class:`~.eval_during_training.EvaluatingTrainer` first among its bases (sentence-transformers'
        trainer for embeddings, ``transformers.Trainer`` for rerankers)."""

    def callbacks(self) -> list[TrainerCallback]:
        """The trainer callbacks: the epoch resampler of the training view (:attr:`resampler`: every
        trainer draws its groups anew each epoch), if any, and :class:`~.loss_curve.LogLastStep` (the
        last step is a point of the loss curve)."""
        return [*([self.resampler] if self.resampler is not None else []), LogLastStep()]

    def build_evaluator(self, eval_set: Any) -> TrainingEvaluator:
        """The evaluator of ``eval_data``: the evaluation package, run on :attr:`family` (the core family
        object being trained, whose model is the Trainer's), measuring the config's eval metrics."""
        c = self.config
        return TrainingEvaluator(self.family, eval_set, type(c).eval_metrics(), c.best_metric())

    def epoch_resampled(self, build: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``build(*args, epochs=callback, **kwargs)``: a training view whose groups are drawn anew every
        epoch, by the callback that :meth:`callbacks` hands the trainer."""
        from .data import EpochResampleCallback

        self.resampler = EpochResampleCallback()
        return build(*args, epochs=self.resampler, **kwargs)

    def text_groups(self, kind: str, tokenizer: Any, max_tokens: int, **options: Any) -> Any:
        """``train_data`` as :func:`~.data.training_view` rows of ``kind`` with ``train_group_size``
        documents, drawn anew every epoch; a huge text is cut before the collator tokenizes it whole
        (``clip_for_truncation`` at ``max_tokens``: the same tokens kept). ``options``: the prompts."""
        from rag_retrieval_integrations.core.text.long_text import clip_for_truncation

        from .data import load_examples, training_view

        c = self.config
        return self.epoch_resampled(
            training_view,
            load_examples(c.train_data),
            kind=kind,
            group_size=getattr(c, "train_group_size"),  # noqa: B009 (not every trainer's config has it)
            seed=c.seed,
            clip=partial(clip_for_truncation, tokenizer, max_tokens=max_tokens),
            **options,
        )

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

    def data_files(self) -> dict[str, str]:
        """The files the model trained on, by config key, for its model card."""
        files = {"train_data": self.config.train_data}
        teacher_vectors = getattr(self.config, "teacher_vectors", "")
        if teacher_vectors:
            files["teacher_vectors"] = teacher_vectors
        return files

    def own_files(self) -> list[Path]:
        """Files in ``output_dir`` this run writes before training (not another run's: kept, not refused)."""
        return []

    # ---- the run --------------------------------------------------------------------------

    def training_arguments(self, args_class: type) -> Any:
        c = self.config
        arguments: dict[str, Any] = dict(
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
        arguments.update(evaluation_arguments(c))  # may save at every evaluation
        return args_class(**arguments)

    def _checkpointing_arguments(self, args_class: type) -> dict[str, Any]:
        if not self.config.gradient_checkpointing:
            return {}
        # transformers renamed gradient_checkpointing to activation_checkpointing (5.x)
        fields = getattr(args_class, "__dataclass_fields__", {})
        return {"activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": True}

    def _resumes_in_output_dir(self) -> bool:
        resume = self.config.resume
        return resume is True or (resume is not False and Path(resume).parent.resolve() == self.output_dir.resolve())

    def resume_checkpoint(self) -> str | None:
        """The checkpoint to resume from (``None``: start afresh), checked to belong to this run.

        ``resume: true`` takes the newest complete ``checkpoint-*`` in ``output_dir`` (a warning names
        the newer, incomplete ones skipped) and needs the config saved there to match this one;
        ``resume: <path>`` takes that checkpoint, checked against the config saved next to it if any.
        """
        resume = self.config.resume
        if resume is False:
            return None
        current = config_payload(self.config, self.name)
        free = type(self.config).RESUME_FREE_KEYS
        if resume is True:
            last, skipped = run_folder.latest_complete_checkpoint(self.output_dir)
            saved = run_folder.saved_config(self.output_dir)
            if saved is None:
                if last is None:
                    also = f" ({'; '.join(skipped)})" if skipped else ""
                    raise FileNotFoundError(
                        f"resume=true but {str(self.output_dir)!r} holds no checkpoint-* folder{also}"
                    )
                raise ConfigError(
                    f"resume: {str(self.output_dir)!r} holds checkpoints but no {RESOLVED_CONFIG_FILE}, "
                    f"so whether they are this run's cannot be checked; name one to resume from it anyway "
                    f"(resume: {last}), or choose another output_dir"
                )
            run_folder.check_same_run(self.output_dir, saved, current, free)
            if last is None and (self.output_dir / METADATA_FILE).is_file():
                raise ConfigError(
                    f"resume: {str(self.output_dir)!r} holds a finished run whose checkpoints were deleted "
                    "(keep_checkpoints: false); to train it further, start a new run from it "
                    f"(model_name_or_path: {str(self.output_dir)!r}, another output_dir), or set "
                    "keep_checkpoints: true on a run you mean to continue"
                )
            if last is None:  # killed before its first checkpoint was complete
                logger.warning(
                    "resume: %s holds no complete checkpoint yet%s: training from the start",
                    self.output_dir,
                    f" ({'; '.join(skipped)})" if skipped else "",
                )
                return None
            return str(last)
        checkpoint = Path(resume)
        if not checkpoint.is_dir():
            raise FileNotFoundError(f"resume checkpoint {resume!r} does not exist")
        reason = run_folder.incomplete_reason(checkpoint)
        if reason is not None:
            raise ConfigError(f"resume: {resume!r} cannot be resumed from: {reason}; name an earlier checkpoint")
        if self.config.overwrite_output_dir and self._resumes_in_output_dir():
            raise ConfigError(f"overwrite_output_dir: true would delete the checkpoint resume: {resume!r} names")
        saved = run_folder.saved_config(checkpoint.parent)
        if saved is None:
            logger.warning(
                "resume: %s has no saved config; not checking the checkpoint is this run's", checkpoint.parent
            )
        else:
            run_folder.check_same_run(checkpoint.parent, saved, current, free)
        return str(checkpoint)

    def check_output_dir(self) -> None:
        """Refuse a new run into an ``output_dir`` that holds another run's files (``overwrite_output_dir``
        lets it replace them). Read-only: every process of a launch runs it before any writes."""
        if self._resumes_in_output_dir():
            return  # resume_checkpoint checked that the folder holds this run
        entries = run_folder.earlier_entries(self.output_dir, self.own_files())
        if entries and not self.config.overwrite_output_dir:
            raise run_folder.refuse_earlier_run(self.output_dir, entries)

    def _claim_output_dir(self, trainer: Any) -> None:
        """Clear an earlier run (``overwrite_output_dir``) and save this run's config before the first step,
        so that the folder says whose it is even if the run is killed."""
        # every process checked the folder before the main one changes it
        trainer.accelerator.wait_for_everyone()
        if trainer.is_world_process_zero():
            if self.config.overwrite_output_dir and not self._resumes_in_output_dir():
                run_folder.clear_earlier_run(self.output_dir, self.own_files())
            save_config(self.config, self.output_dir, self.name)
        trainer.accelerator.wait_for_everyone()

    def run(self) -> Path:
        """Train, then write the model, our metadata, the resolved config, the loss curve and the model
        card, and delete the checkpoints (unless ``keep_checkpoints``).

        Before any model loads, the run checks ``output_dir`` is its own (see :meth:`check_output_dir`
        and :meth:`resume_checkpoint`). ``disable_progress_bar`` silences model and data loading bars too.
        """
        with progress_bars(not self.config.disable_progress_bar):
            return self._run()

    def _finish_checkpoints(self, state: Any) -> None:
        """Delete the ``checkpoint-*`` folders of a finished run, unless ``keep_checkpoints``; a run a
        callback stopped before its last step keeps them, to be resumed. Last: until the model is
        complete, they are the run."""
        if self.config.keep_checkpoints:
            return
        if state.max_steps and state.global_step < state.max_steps:
            logger.warning(
                "the run stopped at step %d of %d: its checkpoints are kept in %s (resume: true continues it)",
                state.global_step,
                state.max_steps,
                self.output_dir,
            )
            return
        run_folder.remove_checkpoints(self.output_dir)

    def _run(self) -> Path:
        resume_from = self.resume_checkpoint()
        self.check_output_dir()
        eval_set = load_eval_set(self.config) if self.config.eval_data else None  # before the model: fail fast
        set_seed(self.config.seed)
        with naming_key("model_name_or_path"):
            model = self.build_model()
        train_dataset = self.build_train_dataset(model)
        loss = self.build_loss(model)
        configure_fsdp_wrap(model)  # before the Trainer builds its FSDP plugin
        trainer_class, args_class = self.trainer_classes()
        if not issubclass(trainer_class, EvaluatingTrainer):
            raise TypeError(f"{trainer_class.__name__} must subclass EvaluatingTrainer (evaluation during training)")
        trainer = trainer_class(
            model=model,
            args=self.training_arguments(args_class),
            train_dataset=train_dataset,
            loss=loss,
            callbacks=self.callbacks(),
            evaluator=None if eval_set is None else self.build_evaluator(eval_set),
            **self.trainer_kwargs(model),
        )
        check_unsharded(trainer)
        self._claim_output_dir(trainer)
        trainer.train(resume_from_checkpoint=resume_from)
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
                    # how it ran: e.g. MULTI_CPU / MULTI_GPU (DDP), FSDP, DEEPSPEED, and over how many processes
                    "distributed": str(trainer.accelerator.distributed_type.value),
                    "processes": trainer.accelerator.num_processes,
                },
            )
            save_config(self.config, self.output_dir, self.name)
            plot_loss_curve(
                trainer.state.log_history,
                self.output_dir / LOSS_CURVE_FILE,
                f"{self.name} training loss",
                best_step=trainer.state.best_global_step or None,
            )
            model_card.write_model_card(self, trainer.state)
            self._finish_checkpoints(trainer.state)
        self.trainer = trainer
        return self.output_dir


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)
