"""Matryoshka wrapper: one base loss at several truncated embedding dimensions, from one forward pass."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor, nn

from ._common import EmbeddingLoss, check_non_negative, model_embedding_dim

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def truncate_and_normalize(embeddings: Sequence[Tensor], dim: int) -> list[Tensor]:
    """The first ``dim`` dimensions of every column, L2-normalized again."""
    full = embeddings[0].size(-1)
    if dim > full:
        raise ValueError(f"matryoshka dim {dim} is larger than the embeddings' dimension {full}")
    return [F.normalize(emb[..., :dim], p=2, dim=-1) for emb in embeddings]


class MatryoshkaLoss(EmbeddingLoss):
    """Trains the leading dimensions of the embedding to work on their own (Matryoshka Representation Learning).

    Formula, for dims d_1 > d_2 > ... and weights w_d (default all 1)::

        loss = sum_d  w_d * base( normalize(e[:, :d]) for every column e )

    Every column is truncated to its first d dimensions and L2-normalized again. Our base
    losses score by cosine, which normalizes anyway; the explicit normalization makes the
    truncated vectors exactly what a user gets from ``SentenceTransformer(path, truncate_dim=d)``
    followed by normalization. The model runs once per batch; each dimension only slices the
    same embeddings (no re-encoding per dimension).

    Base losses: anything with ``compute_loss_from_embeddings(embeddings, labels)``, i.e. ours
    (:class:`InfoNCELoss`, :class:`PreferenceKLLoss`, :class:`EmbeddingDistillationLoss`) and
    sentence-transformers' ``MultipleNegativesRankingLoss``. A base loss may also define
    ``compute_truncated_loss_from_embeddings(embeddings, labels)``, used for every dim below the
    model's full dimension: :class:`EmbeddingDistillationLoss` does, to keep its cosine term
    (which needs student and teacher in the same space) at the full dimension only while its
    similarity-matrix and margin terms apply at every dim against the full teacher, as the
    Jasper/Stella recipe does. Labels reach the base loss unchanged.

    With sentence-transformers' MNRL as the base, and the same dims and weights, this equals
    sentence-transformers' ``MatryoshkaLoss(model, MultipleNegativesRankingLoss(...), dims)``:
    that one also truncates and re-normalizes (its ``shrink``), and sorts dims descending.

    Args:
        model: the SentenceTransformer being trained.
        loss: the base loss.
        matryoshka_dims: positive, distinct dims, none larger than the model's embedding dim
            (checked here when the model knows its dim, else at the first batch). Stored sorted
            descending in ``.matryoshka_dims`` (the trainer records them in the checkpoint).
            Include the full dim, or the full-size vectors are not trained.
        matryoshka_weights: one non-negative weight per dim, in the order given; default all 1.

    Inputs: those of the base loss (the columns and labels it documents).

    Example::

        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        from rag_retrieval_train.losses import InfoNCELoss, MatryoshkaLoss

        model = SentenceTransformer("BAAI/bge-small-en-v1.5")            # 384-dim
        loss = MatryoshkaLoss(model, InfoNCELoss(model), matryoshka_dims=[384, 256, 128, 64])
        SentenceTransformerTrainer(model=model, train_dataset=train_dataset, loss=loss).train()
    """

    def __init__(
        self,
        model: SentenceTransformer,
        loss: nn.Module,
        matryoshka_dims: Sequence[int],
        matryoshka_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(model)
        if not callable(getattr(loss, "compute_loss_from_embeddings", None)):
            raise TypeError(
                f"MatryoshkaLoss needs a base loss with compute_loss_from_embeddings(embeddings, labels); "
                f"{type(loss).__name__} has none"
            )
        if isinstance(matryoshka_dims, (str, bytes)) or not isinstance(matryoshka_dims, Iterable):
            raise ValueError(f"matryoshka_dims must be a non-empty list of positive integers, got {matryoshka_dims!r}")
        dims = list(matryoshka_dims)
        if not dims:
            raise ValueError(f"matryoshka_dims must be a non-empty list of positive integers, got {matryoshka_dims!r}")
        for dim in dims:
            if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim <= 0:
                raise ValueError(f"matryoshka_dims must hold positive integers, got {dim!r} in {dims}")
        dims = [int(dim) for dim in dims]
        if len(set(dims)) != len(dims):
            raise ValueError(f"matryoshka_dims must be distinct, got {dims}")
        full_dim = model_embedding_dim(model)
        if full_dim is not None:
            for dim in dims:
                if dim > full_dim:
                    raise ValueError(f"matryoshka dim {dim} is larger than the model's embedding dimension {full_dim}")
        if matryoshka_weights is None:
            weights = [1.0] * len(dims)
        else:
            weights = [check_non_negative(w, "each of matryoshka_weights") for w in matryoshka_weights]
            if len(weights) != len(dims):
                raise ValueError(
                    f"matryoshka_weights has {len(weights)} values but matryoshka_dims has {len(dims)}: {dims}"
                )
        pairs = sorted(zip(dims, weights), key=lambda pair: pair[0], reverse=True)
        self.loss = loss
        self.matryoshka_dims: list[int] = [dim for dim, _ in pairs]
        self.matryoshka_weights: list[float] = [weight for _, weight in pairs]

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The weighted sum of the base loss over the truncated, re-normalized ``embeddings``."""
        full_dim = embeddings[0].size(-1)
        truncated_loss = getattr(self.loss, "compute_truncated_loss_from_embeddings", None)
        total: Tensor | float = 0.0
        for dim, weight in zip(self.matryoshka_dims, self.matryoshka_weights):
            columns = truncate_and_normalize(embeddings, dim)
            if dim < full_dim and truncated_loss is not None:
                total = total + weight * truncated_loss(columns, labels)
            else:
                total = total + weight * self.loss.compute_loss_from_embeddings(columns, labels)
        return total  # type: ignore[return-value]

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "loss": type(self.loss).__name__,
            "matryoshka_dims": list(self.matryoshka_dims),
            "matryoshka_weights": list(self.matryoshka_weights),
        }

    @property
    def citation(self) -> str:
        return """
@misc{kusupati2024matryoshka,
    title={Matryoshka Representation Learning},
    author={Aditya Kusupati and Gantavya Bhatt and Aniket Rege and Matthew Wallingford and Aditya Sinha and Vivek Ramanujan and William Howard-Snyder and Kaifeng Chen and Sham Kakade and Prateek Jain and Ali Farhadi},
    year={2024},
    eprint={2205.13147},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}
"""
