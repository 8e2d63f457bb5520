"""Evaluation during training: ``eval_data`` scored with the model being trained, in memory.

The evaluator is sentence-transformers' kind (a ``BaseEvaluator``, called as
``evaluator(model, output_path, epoch, steps)``), and every trainer takes it as ``evaluator=``.
It measures what ``rag-retrieval-eval`` measures, with the evaluation package itself:

- reranker and distill trainers: :func:`~rag_retrieval_integrations.evaluation.evaluate_reranker`
  ranks each query's candidates with the core family object being trained (MAP, MRR@10, nDCG@10);
- embedding and ColBERT trainers: :func:`~rag_retrieval_integrations.evaluation.evaluate_retriever`
  indexes the corpus with that family object and searches it (nDCG@10, MRR@10, R@10, R@100).

The family object is the one the trainer built with ``for_training`` and trains (its ``.model`` is
the module the Trainer updates), so the evaluation encodes and scores as ``Reranker(path)`` will
on the saved checkpoint: nothing is re-implemented here, and nothing is saved or reloaded.

:class:`EvaluatingTrainer` is the mixin each trainer's own class (``RerankerTrainer``,
``EmbeddingTrainer``, ``ColBERTTrainer``) puts before its base, so that ``evaluate()`` runs the
evaluator instead of an eval-loss loop. ``transformers.Trainer`` does the rest: ``eval_steps``, logging to the console
and to every ``report_to`` integration, ``metric_for_best_model``, and ``load_best_model_at_end``
(it keeps the best checkpoint through ``save_total_limit`` and loads it when training ends).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sentence_transformers.base.evaluation import BaseEvaluator

from rag_retrieval_integrations.core import BaseReranker
from rag_retrieval_integrations.evaluation import (
    RerankSet,
    RetrievalSet,
    evaluate_reranker,
    evaluate_retriever,
    load_rerank_set,
    load_retrieval_set,
)

from .config import ConfigError, TrainConfig

logger = logging.getLogger(__name__)

EvalSet = RerankSet | RetrievalSet


def load_eval_set(config: TrainConfig) -> EvalSet:
    """The config's ``eval_data``, read as its trainer evaluates: a reranking set for the trainers that
    measure rerank metrics, else a retrieval set (``eval_split`` of a BEIR folder). Read before the
    model loads, so that a malformed set fails the run before any time is spent (errors name file:line)."""
    if type(config).EVAL_TASK == "rerank":
        return load_rerank_set(config.eval_data)
    return load_retrieval_set(config.eval_data, split=config.eval_split)


@contextmanager
def scoring_in_place(family: BaseReranker) -> Iterator[BaseReranker]:
    """``family`` scoring with its model where training has put it (the Trainer moves the module,
    not the family's ``device``), in eval mode (no dropout); both are put back afterwards."""
    module = family.model
    device = next(module.parameters()).device
    saved_device, was_training = family.device, module.training
    family.device = device
    module.eval()
    try:
        yield family
    finally:
        family.device = saved_device
        module.train(was_training)


class TrainingEvaluator(BaseEvaluator):
    """Measures a training run's model on its ``eval_data`` with the evaluation package.

    Args:
        family: the core family object being trained (its ``.model`` is the module in training).
        data: the set from :func:`load_eval_set`: a :class:`RerankSet` is ranked, a
            :class:`RetrievalSet`'s corpus is indexed and searched.
        metrics: the metrics returned, in the evaluation package's names (``MAP``, ``nDCG@10``...).
        primary_metric: the one ``metric_for_best_model`` names (higher is better for all of them).
    """

    def __init__(self, family: BaseReranker, data: EvalSet, metrics: tuple[str, ...], primary_metric: str) -> None:
        super().__init__()
        if primary_metric not in metrics:
            raise ValueError(f"primary_metric must be one of {list(metrics)}, got {primary_metric!r}")
        self.family = family
        self.data = data
        self.metrics = metrics
        self.primary_metric = primary_metric
        self.greater_is_better = True

    def __call__(
        self, model: Any = None, output_path: str | None = None, epoch: float = -1, steps: int = -1
    ) -> dict[str, float]:
        """The metrics of the model as it is now. ``model`` (the trainer's module) is the family's own,
        or wraps it; the family is what scores, so the metrics are those of the checkpoint it saves."""
        with scoring_in_place(self.family) as family:
            if isinstance(self.data, RerankSet):
                scores = evaluate_reranker(family, self.data, self.metrics)
            else:
                scores = evaluate_retriever(family, self.data, metrics=self.metrics, show_progress=False)
        return {name: float(scores[name]) for name in self.metrics}


class EvaluatingTrainer:
    """A ``transformers.Trainer`` mixin: ``evaluate()`` runs ``self.evaluator`` on the model in memory,
    then logs the metrics (``eval_<metric>``, ``eval_runtime``) and calls the callbacks' ``on_evaluate``
    as ``Trainer.evaluate`` does; without an evaluator (or given a dataset) it is ``Trainer.evaluate``.

    Every process of a multi-process run evaluates the whole set (same weights, same metrics), so each
    takes the same best-checkpoint decision; sharded weights (DeepSpeed, FSDP) are refused by the run.
    """

    _NO_EVAL_DATASET = "evaluator"  # what transformers' check for an eval_dataset is given

    def __init__(self, *args: Any, evaluator: TrainingEvaluator | None = None, **kwargs: Any) -> None:
        if "evaluator" in inspect.signature(super().__init__).parameters:  # sentence-transformers' trainers
            kwargs["evaluator"] = evaluator
        elif evaluator is not None and kwargs.get("eval_dataset") is None:
            # transformers refuses eval_strategy without an eval_dataset; evaluate() never reads it
            kwargs["eval_dataset"] = self._NO_EVAL_DATASET
        super().__init__(*args, **kwargs)
        if self.eval_dataset is self._NO_EVAL_DATASET:
            self.eval_dataset = None
        self.evaluator = evaluator

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        evaluator = getattr(self, "evaluator", None)
        if not isinstance(evaluator, TrainingEvaluator) or eval_dataset is not None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)  # type: ignore[misc]
        started = time.perf_counter()
        scores = evaluator(self.model, epoch=self.state.epoch, steps=self.state.global_step)
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in scores.items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.perf_counter() - started, 4)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def evaluation_arguments(config: TrainConfig) -> dict[str, Any]:
    """The training arguments of evaluation during training: none without ``eval_data``.

    ``eval_steps: 0`` evaluates at the end of every epoch (transformers' ``eval_strategy: epoch``),
    ``N`` every N steps; with ``load_best_model_at_end``, a ``save_steps: 0`` saves a checkpoint at
    every evaluation (transformers needs one there to keep the best).
    """
    if not config.eval_data:
        return {}
    steps = config.eval_steps
    arguments: dict[str, Any] = {
        "eval_strategy": "steps" if steps else "epoch",
        "eval_steps": steps or None,
        "metric_for_best_model": f"eval_{config.best_metric()}",
        "greater_is_better": True,
        "load_best_model_at_end": config.load_best_model_at_end,
    }
    if config.load_best_model_at_end and steps and not config.save_steps:
        arguments.update(save_strategy="steps", save_steps=steps)
    return arguments


def check_unsharded(trainer: Any) -> None:
    """Refuse evaluation during training where no process holds the whole model."""
    if getattr(trainer, "evaluator", None) is not None and (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        raise ConfigError(
            "eval_data: evaluation during training scores with the whole model on each process, which "
            "DeepSpeed and FSDP shard; train without eval_data and evaluate the saved checkpoints with "
            "rag-retrieval-eval (keep_checkpoints: true keeps them)"
        )
