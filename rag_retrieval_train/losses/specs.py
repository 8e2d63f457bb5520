"""What every loss table entry says about its loss, and the check every trainer's config makes with it.

Each trainer's losses are one table of :class:`LossSpec` by name (``reranker_specs.py``,
``encoder_specs.py``): config validation (the ``loss`` choices and the group size a loss needs),
dataset building (which rows and targets), the distill trainer's allowed losses, ``--list-keys``
and ``docs/training-keys.md`` all read the tables, so a new loss is one entry and one ``nn.Module``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

from ..config import ConfigError

Rows = Literal["pairs", "groups", "infonce", "preference", "teacher_vectors"]
"""The training rows a loss reads: reranker ``pairs`` or ``groups`` of a query's documents; for the
embedding and ColBERT trainers the ``infonce`` view (positive + hard negatives), the ``preference`` view
(scored documents) or ``teacher_vectors`` (texts aligned with a teacher's vectors)."""
Targets = Literal["labels", "teacher-scores"]
"""What a reranker loss fits: the labels, or a teacher's raw scores (distillation)."""


@dataclass(frozen=True)
class LossSpec:
    """One loss of a trainer.

    Attributes:
        name: the ``loss`` value in a config.
        build: ``(config, model) -> nn.Module``; the config supplies ``temperature``, ``pos_weight``...
        data: the rows it trains on (:data:`Rows`).
        summary: one line for ``--list-keys`` and the key reference.
        min_group_size: the fewest documents per query (``train_group_size``) it works with.
        targets: what a reranker loss fits (:data:`Targets`).
        by_label: groups are drawn by label (a positive first) even where the targets are teacher scores.
    """

    name: str
    build: Callable[[Any, Any], torch.nn.Module]
    data: Rows
    summary: str
    min_group_size: int = 1
    targets: Targets = "labels"
    by_label: bool = False

    def __post_init__(self) -> None:
        if self.data not in get_args(Rows):
            raise ValueError(f"loss {self.name!r}: data must be one of {get_args(Rows)}, got {self.data!r}")
        if self.targets not in get_args(Targets):
            raise ValueError(f"loss {self.name!r}: targets must be one of {get_args(Targets)}, got {self.targets!r}")

    @property
    def teacher_scores(self) -> bool:
        """The target is a teacher's score (distillation), not the label."""
        return self.targets == "teacher-scores"

    @property
    def labelled_groups(self) -> bool:
        """Groups are drawn by label (a positive first) even though the targets are teacher scores."""
        return self.by_label

    @property
    def pointwise(self) -> bool:
        """Rows are single (pair, target), not groups of ``train_group_size`` documents per query."""
        return self.data == "pairs"

    def check_group_size(self, group_size: int) -> None:
        """A :class:`ConfigError` unless ``train_group_size`` gives this loss enough documents per query."""
        if group_size < self.min_group_size:
            raise ConfigError(
                f"loss={self.name} compares documents of a query: it needs train_group_size >= "
                f"{self.min_group_size}, got {group_size}"
            )


def table(*specs: LossSpec) -> dict[str, LossSpec]:
    """Specs by name, in the order given (the first is the trainer's default ``loss``)."""
    return {spec.name: spec for spec in specs}


def choices_summary(losses: dict[str, LossSpec]) -> str:
    """``name: summary; ...`` for a ``loss`` key's description."""
    return "; ".join(f"`{name}`: {spec.summary}" for name, spec in losses.items())
