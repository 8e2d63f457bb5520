"""Jasper/Stella embedding distillation: cosine, similarity-matrix and relative-similarity margin losses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._common import EmbeddingLoss, check_columns, check_non_negative, check_positive, label_tensor

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Anchors per chunk of the margin loss are chosen so that one chunk holds about this many (i, j, k) triples.
_TRIPLES_PER_CHUNK = 1 << 22


class _RelativeSimilarityMargin(torch.autograd.Function):
    """Mean hinge over anchored triples, with its gradient computed alongside, in O(B^2) memory.

    Plain autograd over a per-anchor loop would keep every anchor's (B, B) hinge mask for the
    backward pass, B^3 in total. The gradient is simple enough to accumulate in the forward pass
    instead: for anchor i, an active triple (hinge > 0) adds -1 to dL/dS_ij and +1 to dL/dS_ik.
    So only one (B, B) gradient is kept, plus one chunk of (chunk, B, B) temporaries at a time.
    """

    @staticmethod
    def forward(ctx: Any, student_sim: Tensor, teacher_sim: Tensor, margin: float, chunk_size: int) -> Tensor:
        # Accumulate in at least float32 whatever the training dtype: sums over up to B^3 triples.
        dtype = student_sim.dtype
        work = torch.promote_types(dtype, torch.float32)
        student_sim, teacher_sim = student_sim.to(work), teacher_sim.to(work)
        batch = student_sim.size(0)
        grad = torch.zeros_like(student_sim)
        total = student_sim.new_zeros(())
        count = 0
        for start in range(0, batch, chunk_size):
            stop = min(start + chunk_size, batch)
            anchors = torch.arange(start, stop, device=student_sim.device)
            rows = torch.arange(stop - start, device=student_sim.device)
            s, t = student_sim[start:stop], teacher_sim[start:stop]
            # valid[a, j, k]: the teacher ranks j above k for anchor a (strictly), neither being a itself.
            valid = t[:, :, None] > t[:, None, :]
            valid[rows, anchors, :] = False
            valid[rows, :, anchors] = False
            count += int(valid.sum())
            # The hinge margin - (S_aj - S_ak) is active where S_aj - S_ak < margin.
            active = valid.logical_and_(s[:, :, None] - s[:, None, :] < margin).to(work)
            del valid
            # d hinge / d S_aj = -1 and d hinge / d S_ak = +1 for every active (a, j, k):
            row_grad = active.sum(dim=1) - active.sum(dim=2)
            # sum of active hinges = margin * #active - sum_j S_aj * #(j as the upper) + sum_k S_ak * #(k as the lower)
            total = total + margin * active.sum() + (s * row_grad).sum()
            grad[start:stop] = row_grad
            del active
        count = max(count, 1)  # no ordered triple at all (B < 3 or all ties): loss 0, gradient 0
        ctx.save_for_backward((grad / count).to(dtype))
        return (total / count).to(dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None, None]:
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None, None, None


def relative_similarity_margin_loss(
    student_sim: Tensor, teacher_sim: Tensor, margin: float, chunk_size: int | None = None
) -> Tensor:
    """Mean of max(0, margin - (S_ij - S_ik)) over anchors i and pairs j, k != i with T_ij > T_ik.

    ``student_sim`` and ``teacher_sim`` are (B, B) similarity matrices. Memory is O(B^2) plus one
    chunk of ``chunk_size * B * B`` temporaries (by default about 4M elements); time is O(B^3).
    Returns 0 when no pair is ordered by the teacher.
    """
    batch = student_sim.size(0)
    if chunk_size is None:
        chunk_size = max(1, _TRIPLES_PER_CHUNK // max(1, batch * batch))
    return _RelativeSimilarityMargin.apply(student_sim, teacher_sim.detach(), float(margin), int(chunk_size))


def _total(components: dict[str, Tensor], embeddings: list[Tensor]) -> Tensor:
    return sum(components.values(), embeddings[0].new_zeros(()))  # type: ignore[return-value]


class EmbeddingDistillationLoss(EmbeddingLoss):
    """Distills a teacher's embeddings into the student: Jasper/Stella stages 1-2.

    Formula, for student vectors s_i and teacher vectors t_i (i = 1..B), both L2-normalized,
    S = s s^T and T = t t^T their (B, B) cosine-similarity matrices::

        cosine     = 1/B   * sum_i (1 - cos(s_i, t_i))
        similarity = 1/B^2 * sum_{i,j} (S_ij - T_ij)^2                       (MSE of the matrices)
        margin     = 1/N   * sum_{(i,j,k): j,k != i, T_ij > T_ik} max(0, margin - (S_ij - S_ik))
                     (N = number of such triples; the teacher's ranking of j above k for anchor i
                     must hold in the student by at least ``margin``)
        loss = cosine_weight * cosine + similarity_weight * similarity + margin_weight * margin

    The margin term is computed anchor chunk by anchor chunk with its gradient accumulated in the
    forward pass, so memory stays O(B^2) (no B^3 or B^4 tensor is materialized; see
    :func:`relative_similarity_margin_loss`); time is O(B^3). It anchors each triple on one
    text i and compares its similarities to j and k; the original RAG-Retrieval code compared
    every pair of pairs (S_ab against S_cd over all pairs of pairs), an O(B^4) tensor.

    Defaults: weights 10 / 200 / 20 and margin 0.015, the values of the authors' reference
    implementation (RAG-Retrieval's ``model_distill.py``) for "Jasper and Stella: distillation of
    SOTA embedding models" (Zhang et al., arXiv 2412.19048). They were checked against that code,
    not against the paper's text.

    Dimensions: the cosine term needs student and teacher vectors of the same size; if the
    student's dim D_s differs from the teacher's D_t, add a projection to the model (e.g. a
    linear ``Dense(D_s, D_t, activation_function=torch.nn.Identity())`` module; Dense's default
    activation is tanh) or a ValueError naming both dims is raised. The other two terms compare (B, B) matrices and work for any D_s, so with
    ``cosine_weight=0`` the dims may differ. Under :class:`MatryoshkaLoss`, the truncated dims use
    only those two terms against the full teacher (``compute_truncated_loss_from_embeddings``).

    Args:
        model: the student SentenceTransformer.
        cosine_weight, similarity_weight, margin_weight: non-negative weights of the three terms
            (a zero weight skips computing its term).
        margin: the hinge margin of the relative-similarity term, > 0.
        margin_chunk_size: anchors per chunk in the margin term; default: as many as keep one
            chunk near 4M triples.

    Inputs (the columns the data layer produces):
        one column ``(text,)``, so ``sentence_features = [text]``; ``labels`` = teacher vectors of
        shape ``(batch, D_t)``, from a ``"label"`` column holding the teacher's vector per row.

    Example::

        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        from sentence_transformers.sentence_transformer.modules import Dense  # sentence_transformers.models on 5.x
        from rag_retrieval_train.losses import EmbeddingDistillationLoss

        student = SentenceTransformer("BAAI/bge-small-en-v1.5")                   # 384-dim
        student.append(Dense(384, 1024, activation_function=torch.nn.Identity()))  # teacher is 1024-dim
        # train_dataset: a "text" column and a "label" column of 1024 floats (the teacher's vectors)
        loss = EmbeddingDistillationLoss(student)
        SentenceTransformerTrainer(model=student, train_dataset=train_dataset, loss=loss).train()
    """

    def __init__(
        self,
        model: SentenceTransformer,
        cosine_weight: float = 10.0,
        similarity_weight: float = 200.0,
        margin_weight: float = 20.0,
        margin: float = 0.015,
        margin_chunk_size: int | None = None,
    ) -> None:
        super().__init__(model)
        self.cosine_weight = check_non_negative(cosine_weight, "cosine_weight")
        self.similarity_weight = check_non_negative(similarity_weight, "similarity_weight")
        self.margin_weight = check_non_negative(margin_weight, "margin_weight")
        if self.cosine_weight == self.similarity_weight == self.margin_weight == 0:
            raise ValueError("EmbeddingDistillationLoss: at least one of the three weights must be > 0")
        self.margin = check_positive(margin, "margin")
        if margin_chunk_size is not None:
            if isinstance(margin_chunk_size, bool) or not isinstance(margin_chunk_size, int) or margin_chunk_size <= 0:
                raise ValueError(f"margin_chunk_size must be a positive integer or None, got {margin_chunk_size!r}")
        self.margin_chunk_size = margin_chunk_size

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        """The weighted loss from ``[student]`` ((batch, D_s) embeddings) and (batch, D_t) teacher vectors."""
        return _total(self.compute_loss_components(embeddings, labels), embeddings)

    def compute_truncated_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        """As :meth:`compute_loss_from_embeddings` without the cosine term: for Matryoshka-truncated students."""
        return _total(self.compute_loss_components(embeddings, labels, include_cosine=False), embeddings)

    def compute_loss_components(
        self, embeddings: list[Tensor], labels: Tensor | None, include_cosine: bool = True
    ) -> dict[str, Tensor]:
        """The weighted terms by name (``"cosine"``, ``"similarity"``, ``"margin"``), for logging."""
        name = type(self).__name__
        check_columns(embeddings, name, "(text,)", 1)
        if len(embeddings) != 1:
            raise ValueError(f"{name} expects one column (text,), got {len(embeddings)} embedding tensors")
        student = F.normalize(embeddings[0], p=2, dim=-1)
        batch, student_dim = student.shape
        teacher = label_tensor(labels, name, "teacher vectors of shape (batch, teacher_dim)", student)
        if teacher.size(0) != batch:
            raise ValueError(f"{name}: labels hold {teacher.size(0)} teacher vectors for a batch of {batch} texts")
        teacher = F.normalize(teacher, p=2, dim=-1)
        components: dict[str, Tensor] = {}
        if include_cosine and self.cosine_weight > 0:
            if student_dim != teacher.size(1):
                raise ValueError(
                    f"{name}: student embedding dim {student_dim} != teacher dim {teacher.size(1)}; the cosine term "
                    f"needs them equal: add a linear projection to the student, e.g. sentence-transformers' "
                    f"Dense({student_dim}, {teacher.size(1)}, activation_function=torch.nn.Identity())"
                )
            components["cosine"] = self.cosine_weight * (1 - (student * teacher).sum(dim=-1)).mean()
        if self.similarity_weight > 0 or self.margin_weight > 0:
            student_sim = student @ student.T
            teacher_sim = teacher @ teacher.T
            if self.similarity_weight > 0:
                components["similarity"] = self.similarity_weight * F.mse_loss(student_sim, teacher_sim)
            if self.margin_weight > 0:
                margin_loss = relative_similarity_margin_loss(
                    student_sim, teacher_sim, self.margin, self.margin_chunk_size
                )
                components["margin"] = self.margin_weight * margin_loss
        return components

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "cosine_weight": self.cosine_weight,
            "similarity_weight": self.similarity_weight,
            "margin_weight": self.margin_weight,
            "margin": self.margin,
        }

    @property
    def citation(self) -> str:
        return """
@misc{zhang2025jasperstelladistillationsota,
      title={Jasper and Stella: distillation of SOTA embedding models},
      author={Dun Zhang and Jiacheng Li and Ziyang Zeng and Fulong Wang},
      year={2025},
      eprint={2412.19048},
      archivePrefix={arXiv},
      primaryClass={cs.IR},
      url={https://arxiv.org/abs/2412.19048},
}
"""
