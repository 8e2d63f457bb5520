"""Helpers shared by the embedding losses: embedding the columns, cosine scores, cross-rank gathering.

Kept free of a module-level ``sentence_transformers`` import, so that importing the losses
(for instance in a spawned worker process) stays cheap.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def embed_columns(model: SentenceTransformer, sentence_features: Iterable[dict[str, Tensor]]) -> list[Tensor]:
    """One ``(batch, dim)`` ``sentence_embedding`` tensor per input column.

    Uses sentence-transformers' ``embed_columns`` (one merged forward pass for like-width
    candidate columns, same embeddings) where this version has it, else one
    ``model(features)["sentence_embedding"]`` call per column.
    """
    try:
        from sentence_transformers.base.losses.merged_forward import embed_columns as st_embed_columns
    except ImportError:  # sentence-transformers < 6
        return [model(features)["sentence_embedding"] for features in sentence_features]
    return st_embed_columns(model, sentence_features)


def model_embedding_dim(model: Any) -> int | None:
    """The model's output dimension, or None where the model does not know it."""
    for name in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        getter = getattr(model, name, None)
        if callable(getter):
            return getter()
    return None


def check_columns(embeddings: Sequence[Tensor], loss_name: str, expected: str, min_columns: int) -> None:
    """Every column a 2-D ``(batch, dim)`` tensor with the same batch size and dim as the first."""
    if len(embeddings) < min_columns:
        raise ValueError(
            f"{loss_name} expects the columns {expected}, so at least {min_columns} embedding tensor(s); "
            f"got {len(embeddings)}"
        )
    first = embeddings[0]
    for i, emb in enumerate(embeddings):
        if not isinstance(emb, Tensor) or emb.ndim != 2:
            got = tuple(emb.shape) if isinstance(emb, Tensor) else type(emb).__name__
            raise ValueError(f"{loss_name}: embeddings[{i}] must be a (batch, dim) tensor, got {got}")
        if emb.shape != first.shape:
            raise ValueError(
                f"{loss_name}: embeddings[{i}] has shape {tuple(emb.shape)} but embeddings[0] has "
                f"{tuple(first.shape)}; every column needs the same batch size and dimension"
            )


def check_positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def label_tensor(labels: Any, loss_name: str, what: str, like: Tensor) -> Tensor:
    """``labels`` as a 2-D floating tensor on ``like``'s device and dtype; a clear error when missing."""
    if labels is None:
        raise ValueError(f"{loss_name} needs labels: {what}; got labels=None")
    labels = torch.as_tensor(labels)
    if labels.ndim != 2:
        raise ValueError(f"{loss_name}: labels must be {what}, got a tensor of shape {tuple(labels.shape)}")
    return labels.to(device=like.device, dtype=like.dtype)


def cosine_matrix(a: Tensor, b: Tensor) -> Tensor:
    """``(len(a), len(b))`` cosine similarities (both sides L2-normalized, as sentence-transformers' cos_sim)."""
    return F.normalize(a, p=2, dim=-1) @ F.normalize(b, p=2, dim=-1).T


def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when torch.distributed is not initialized."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_gather_with_grad(tensor: Tensor) -> Tensor:
    """All ranks' tensors concatenated along dim 0; the backward pass sends each rank its slice's gradient."""
    try:
        from sentence_transformers.util import all_gather_with_grad
    except ImportError:  # sentence-transformers without the helper
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(tensor), dim=0)
    return all_gather_with_grad(tensor)


def gather_rows_with_grad(columns: Sequence[Tensor]) -> tuple[list[Tensor], int]:
    """All-gather ``(batch, dim)`` columns across ranks, keeping gradients for this rank's rows.

    Returns the gathered columns (rows in rank order) and the offset of this rank's first row
    in them. Ranks may hold different batch sizes (an uneven last batch): rows are padded to the
    largest one for the collective and the padding is dropped again. Without an initialized
    process group (or with one process) the columns come back unchanged with offset 0.

    Gradient semantics are those of ``torch.distributed.nn.all_gather``: a rank's local rows
    receive the sum, over all ranks, of the gradients of their losses. With DDP averaging the
    parameter gradients over ranks, this makes the update exactly the gradient of the loss over
    the global batch.
    """
    rank, world_size = distributed_world()
    if world_size == 1:
        return list(columns), 0
    local = torch.stack(list(columns), dim=1)  # (batch, columns, dim): one collective for all columns
    size = torch.tensor([local.size(0)], device=local.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    largest = max(counts)
    if local.size(0) < largest:
        local = torch.cat([local, local.new_zeros(largest - local.size(0), *local.shape[1:])])
    gathered = _all_gather_with_grad(local)
    if any(count != largest for count in counts):
        keep = torch.cat([torch.arange(r * largest, r * largest + c) for r, c in enumerate(counts)])
        gathered = gathered.index_select(0, keep.to(gathered.device))
    return list(gathered.unbind(dim=1)), sum(counts[:rank])


class EmbeddingLoss(nn.Module):
    """Base of our losses: ``forward`` embeds every column once and hands the embeddings to
    ``compute_loss_from_embeddings(embeddings, labels)``, which each loss implements."""

    def __init__(self, model: SentenceTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        return self.compute_loss_from_embeddings(embed_columns(self.model, sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        raise NotImplementedError
