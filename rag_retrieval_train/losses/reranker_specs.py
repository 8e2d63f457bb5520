"""The reranker losses by name: what each builds and what data it reads, in one place.

Config validation (the ``loss`` choices), dataset building (pairs or groups, labels or teacher
scores), the distill trainer's allowed losses and ``--list-keys`` all read this table, so a new
loss is one entry here and one ``nn.Module``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class RerankerLossSpec:
    """One reranker loss.

    Attributes:
        name: the ``loss`` value in a config.
        build: ``config -> nn.Module`` (the config supplies ``temperature``, ``pos_weight``, ...).
        pointwise: rows are single (pair, target); otherwise groups of ``train_group_size`` per query.
        teacher_scores: the target is a teacher's ``score`` (distillation), not the label.
    """

    name: str
    build: Callable[[Any], torch.nn.Module]
    pointwise: bool
    teacher_scores: bool


def _specs() -> tuple[RerankerLossSpec, ...]:
    from . import reranker_listwise as listwise
    from . import reranker_pairwise as pairwise
    from . import reranker_pointwise as pointwise

    return (
        RerankerLossSpec("bce", lambda c: pointwise.PointwiseBCELoss(pos_weight=c.pos_weight), True, False),
        RerankerLossSpec("mse", lambda c: pointwise.PointwiseMSELoss(), True, False),
        RerankerLossSpec("ranknet", lambda c: pairwise.RankNetLoss(), False, False),
        RerankerLossSpec("listwise_ce", lambda c: listwise.ListwiseCELoss(temperature=c.temperature), False, False),
        RerankerLossSpec("listnet", lambda c: listwise.ListNetLoss(), False, False),
        RerankerLossSpec("distill_mse", lambda c: pointwise.PointwiseMSELoss(teacher_scores=True), True, True),
        RerankerLossSpec("distill_kl", lambda c: listwise.ListwiseKLLoss(temperature=c.temperature), False, True),
        RerankerLossSpec("margin_mse", lambda c: pairwise.MarginMSELoss(), False, True),
    )


RERANKER_LOSSES: dict[str, RerankerLossSpec] = {spec.name: spec for spec in _specs()}
