"""Pointwise reranker losses: each (query, document) score against its own target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import check_positive
from ._scores import check_same_shape


class PointwiseBCELoss(nn.Module):
    """Binary cross-entropy of each raw score against a soft label in ``[0, 1]``.

    Formula, for N pairs with raw scores s_i (logits) and labels y_i (0/1, or graded labels
    rescaled to [0, 1], see :mod:`rag_retrieval_train.data.reranker_data`)::

        loss = -1/N * sum_i [ y_i * log sigmoid(s_i) + (1 - y_i) * log(1 - sigmoid(s_i)) ]

    Computed from the logits (``binary_cross_entropy_with_logits``), so it is stable for any
    score; the same loss as sentence-transformers' cross-encoder ``BinaryCrossEntropyLoss``.

    Args:
        pos_weight: weight of the positive term (``> 1`` when positives are rare); default 1.
    """

    def __init__(self, pos_weight: float = 1.0) -> None:
        super().__init__()
        self.pos_weight = check_positive(pos_weight, "pos_weight")

    def forward(self, scores: Tensor, labels: Tensor) -> Tensor:
        check_same_shape(scores, labels)
        weight = None if self.pos_weight == 1.0 else torch.tensor(self.pos_weight, device=scores.device)
        return F.binary_cross_entropy_with_logits(scores.float(), labels.float(), pos_weight=weight)


class PointwiseMSELoss(nn.Module):
    """Mean squared error between ``sigmoid(score)`` and a target in ``[0, 1]``.

    Formula, for N pairs with raw scores s_i and targets y_i::

        loss = 1/N * sum_i ( sigmoid(s_i) - y_i )^2

    With ``teacher_scores=True`` the targets are a teacher's raw scores t_i and y_i =
    sigmoid(t_i): the student matches the teacher's normalized score (pointwise distillation).

    Args:
        teacher_scores: the targets are raw teacher scores (pass them through a sigmoid first).
    """

    def __init__(self, teacher_scores: bool = False) -> None:
        super().__init__()
        self.teacher_scores = teacher_scores

    def forward(self, scores: Tensor, labels: Tensor) -> Tensor:
        check_same_shape(scores, labels)
        target = torch.sigmoid(labels.float()) if self.teacher_scores else labels.float()
        return F.mse_loss(torch.sigmoid(scores.float()), target)
