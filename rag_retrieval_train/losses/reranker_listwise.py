"""Listwise reranker losses: a softmax over each query's group of documents."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import check_positive
from ._scores import check_groups


class ListwiseCELoss(nn.Module):
    """Cross-entropy over each query's group, the positive at index 0 (FlagEmbedding's reranker loss).

    Formula, for B queries with group scores s_b0..s_b(n-1), document 0 the positive::

        loss = -1/B * sum_b log( exp(s_b0 / tau) / sum_j exp(s_bj / tau) )

    For a yes-token LLM reranker the scores are the ``Yes`` logits, as in bge-reranker-v2-gemma's
    training. Targets are not read (the positive is always first in a drawn group).

    Args:
        temperature: tau > 0; default 1 (scores used as logits).
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "temperature")

    def forward(self, scores: Tensor, labels: Tensor | None = None) -> Tensor:
        check_groups(scores, labels)
        target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
        return F.cross_entropy(scores.float() / self.temperature, target)


class ListNetLoss(nn.Module):
    """ListNet (Cao et al., 2007): cross-entropy between the label and the score distributions.

    Formula, for B queries with group scores s_b and labels y_b (each of length n)::

        loss = -1/B * sum_b sum_j softmax(y_b)_j * log softmax(s_b)_j

    Graded labels give a graded target distribution; with one positive among negatives it
    is close to :class:`ListwiseCELoss`. As sentence-transformers' cross-encoder ``ListNetLoss``.
    """

    def forward(self, scores: Tensor, labels: Tensor) -> Tensor:
        check_groups(scores, labels)
        target = torch.softmax(labels.float(), dim=-1)
        return -(target * torch.log_softmax(scores.float(), dim=-1)).sum(dim=-1).mean()


class ListwiseKLLoss(nn.Module):
    """Listwise distillation: KL from the teacher's softmax over a group to the student's.

    Formula, for B queries with student scores s_b and teacher scores t_b, temperature T::

        P_b = softmax(t_b / T),   Q_b = softmax(s_b / T)
        loss = T^2 / B * sum_b sum_j P_bj * (log P_bj - log Q_bj)

    The T^2 factor (Hinton et al., 2015) keeps gradient sizes comparable across temperatures.
    The loss is 0 exactly when the student's distribution equals the teacher's.

    Args:
        temperature: T > 0; default 1. Higher values transfer more of the teacher's view of the
            lower-ranked documents.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "temperature")

    def forward(self, scores: Tensor, teacher_scores: Tensor) -> Tensor:
        check_groups(scores, teacher_scores)
        t = self.temperature
        log_q = torch.log_softmax(scores.float() / t, dim=-1)
        log_p = torch.log_softmax(teacher_scores.float() / t, dim=-1)
        return F.kl_div(log_q, log_p, log_target=True, reduction="batchmean") * t * t


class ListwiseKLCELoss(nn.Module):
    """Hard plus soft targets (Hinton et al., 2015): listwise CE on the labels and KL from the teacher.

    Formula, for B queries with student scores s_b and teacher scores t_b over groups whose
    document 0 is a labelled positive, label weight alpha and temperatures tau (CE) and T (KL)::

        loss = alpha * ListwiseCE_tau(s)  +  (1 - alpha) * ListwiseKL_T(s, t)

    with :class:`ListwiseCELoss` and :class:`ListwiseKLLoss` as defined there. The labels keep
    the student on the task where the teacher is wrong; the teacher's softmax adds how much
    better than the negatives the positive is and how the negatives compare, which the labels
    do not say. alpha = 1 is :class:`ListwiseCELoss`, alpha = 0 is :class:`ListwiseKLLoss`.

    Inputs:

    ==================  ======================  =============================================
    argument            shape                   what
    ==================  ======================  =============================================
    ``scores``          (queries, group_size)   the student's scores; document 0 the positive
    ``teacher_scores``  (queries, group_size)   the teacher's scores of the same documents
    ==================  ======================  =============================================

    Args:
        label_weight: alpha in [0, 1]; default 0.5.
        temperature: T > 0 of the KL term; default 1. The CE term uses temperature 1.
    """

    def __init__(self, label_weight: float = 0.5, temperature: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= label_weight <= 1.0:
            raise ValueError(f"label_weight must be in [0, 1], got {label_weight}")
        self.label_weight = float(label_weight)
        self.ce = ListwiseCELoss()
        self.kl = ListwiseKLLoss(temperature=temperature)

    def forward(self, scores: Tensor, teacher_scores: Tensor) -> Tensor:
        alpha = self.label_weight
        return alpha * self.ce(scores) + (1.0 - alpha) * self.kl(scores, teacher_scores)
