"""Pairwise reranker losses: score differences within each query's group."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._scores import check_groups


class RankNetLoss(nn.Module):
    """RankNet (Burges et al., 2005): logistic loss on every ordered pair of a query's documents.

    Formula, for B queries with group scores s_b1..s_bn and labels y_b1..y_bn, over the set P of
    pairs (b, i, j) with y_bi > y_bj (document i should rank above document j)::

        loss = 1/|P| * sum_{(b,i,j) in P} log(1 + exp(-sigma * (s_bi - s_bj)))

    Pairs with equal labels carry no order and are left out; a batch with no ordered pair has
    loss 0. Only score differences matter, so it trains the ranking, not the score scale.
    sentence-transformers' cross-encoder ``RankNetLoss`` is the same loss in bits (divided by ln 2).

    Args:
        sigma: steepness of the logistic; default 1.
    """

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, scores: Tensor, labels: Tensor) -> Tensor:
        check_groups(scores, labels)
        scores, labels = scores.float(), labels.float()
        diffs = scores[:, :, None] - scores[:, None, :]
        ordered = labels[:, :, None] > labels[:, None, :]
        if not ordered.any():
            return scores.sum() * 0.0
        return F.softplus(-self.sigma * diffs[ordered]).mean()


class MarginMSELoss(nn.Module):
    """Margin-MSE distillation (Hofstätter et al., 2020) over every pair of a query's group.

    Formula, for B queries with student scores s_b1..s_bn and teacher scores t_b1..t_bn::

        loss = 1/(B * n(n-1)/2) * sum_b sum_{i<j} ( (s_bi - s_bj) - (t_bi - t_bj) )^2

    The student learns the teacher's score margins, not its absolute scores, so teacher and
    student may have different score scales' offsets. With n = 2 (a positive and a negative)
    this is the classic margin-MSE.
    """

    def forward(self, scores: Tensor, teacher_scores: Tensor) -> Tensor:
        check_groups(scores, teacher_scores)
        n = scores.shape[1]
        i, j = torch.triu_indices(n, n, offset=1, device=scores.device)
        student = scores.float()[:, i] - scores.float()[:, j]
        teacher = teacher_scores.float()[:, i] - teacher_scores.float()[:, j]
        return F.mse_loss(student, teacher)
