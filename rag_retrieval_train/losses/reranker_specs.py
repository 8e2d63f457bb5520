"""The reranker losses by name: what each builds and what data it reads, in one place.

Config validation (the ``loss`` choices, the group size), dataset building (pairs or groups,
labels or teacher scores), the distill trainer's allowed losses, ``--list-keys`` and the key
reference all read :data:`RERANKER_LOSSES`. Its first entry is the reranker trainer's default
``loss``, its first teacher-score entry the distill trainer's.
"""

from __future__ import annotations

from .specs import LossSpec, table


def _specs() -> dict[str, LossSpec]:
    from . import reranker_listwise as listwise
    from . import reranker_pairwise as pairwise
    from . import reranker_pointwise as pointwise

    return table(
        LossSpec(
            "bce", lambda c, m: pointwise.PointwiseBCELoss(pos_weight=c.pos_weight), "pairs", "binary CE on labels"
        ),
        LossSpec("mse", lambda c, m: pointwise.PointwiseMSELoss(), "pairs", "MSE of sigmoid(score) against labels"),
        LossSpec("ranknet", lambda c, m: pairwise.RankNetLoss(), "groups", "pairwise logistic loss", 2),
        LossSpec(
            "listwise_ce",
            lambda c, m: listwise.ListwiseCELoss(temperature=c.temperature),
            "groups",
            "softmax CE of the positive among its group",
            2,
        ),
        LossSpec("listnet", lambda c, m: listwise.ListNetLoss(), "groups", "CE against the labels' softmax", 2),
        LossSpec(
            "distill_kl",
            lambda c, m: listwise.ListwiseKLLoss(temperature=c.temperature),
            "groups",
            "KL from the teacher's softmax over a group",
            2,
            targets="teacher-scores",
        ),
        LossSpec(
            "distill_mse",
            lambda c, m: pointwise.PointwiseMSELoss(teacher_scores=True),
            "pairs",
            "MSE of sigmoid scores against sigmoid teacher scores",
            targets="teacher-scores",
        ),
        LossSpec(
            "margin_mse",
            lambda c, m: pairwise.MarginMSELoss(),
            "groups",
            "MSE of score margins",
            2,
            targets="teacher-scores",
        ),
        LossSpec(
            "distill_kl_ce",
            lambda c, m: listwise.ListwiseKLCELoss(label_weight=c.label_weight, temperature=c.temperature),
            "groups",
            "label_weight * listwise CE on the labels + (1 - label_weight) * distill_kl",
            2,
            targets="teacher-scores",
            by_label=True,
        ),
    )


RERANKER_LOSSES: dict[str, LossSpec] = _specs()
POINTWISE_LOSSES: tuple[str, ...] = tuple(name for name, spec in RERANKER_LOSSES.items() if spec.pointwise)
DISTILL_LOSSES: tuple[str, ...] = tuple(name for name, spec in RERANKER_LOSSES.items() if spec.teacher_scores)
