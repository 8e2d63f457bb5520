"""Shape checks shared by the reranker losses, which all take score tensors."""

from __future__ import annotations

from torch import Tensor


def check_same_shape(scores: Tensor, targets: Tensor) -> None:
    if scores.shape != targets.shape:
        raise ValueError(
            f"scores have shape {tuple(scores.shape)} but targets {tuple(targets.shape)}; one target per score"
        )


def check_groups(scores: Tensor, targets: Tensor | None = None) -> None:
    """Group losses take ``(queries, group_size)`` score matrices with at least 2 documents per group."""
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"a group loss takes scores of shape (queries, group_size >= 2), got {tuple(scores.shape)}")
    if targets is not None:
        check_same_shape(scores, targets)
