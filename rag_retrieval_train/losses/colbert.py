"""ColBERT training losses: contrastive over in-batch and hard negatives, and distillation of teacher scores.

Both are sentence-transformers' multi-vector losses (they embed the columns and assemble the
padded token vectors) with their scores taken from the core layer's MaxSim
(:mod:`rag_retrieval_integrations.core.models.maxsim`), computed in blocks of at most
``chunk_elements`` elements: the ``(queries, documents, query tokens, document tokens)`` similarity
tensor of a batch is never held at once, in the forward pass or the backward pass, whatever
the batch size and the number of negatives.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from sentence_transformers.multi_vector_encoder.losses import (
    MultiVectorDistillKLDivLoss,
    MultiVectorMultipleNegativesRankingLoss,
)

from rag_retrieval_integrations.core.models.maxsim import DEFAULT_CHUNK_ELEMENTS, group_scores, in_batch_scores

from ._common import check_positive

if TYPE_CHECKING:
    from sentence_transformers import MultiVectorEncoder


def _query_mean(model: MultiVectorEncoder, query_mean: bool | None) -> bool:
    """The model's own scoring unless asked otherwise: training scores as inference will."""
    if query_mean is None:
        return model.similarity_fn_name == "meanmaxsim"
    return bool(query_mean)


class ColBERTContrastiveLoss(MultiVectorMultipleNegativesRankingLoss):
    """Contrastive loss: each query must pick its own positive among every document of the batch, by MaxSim.

    Formula, for a batch of B queries q_i, each with a positive p_i and k hard negatives
    n_i1..n_ik (k >= 0). The candidate set D holds all B * (k + 1) documents of the batch, so the
    other queries' positives and hard negatives are negatives too (in-batch negatives)::

        s(q, d) = sum_t max_u  q_t . d_u          (MaxSim; divided by the query's token count
                                                   when the model scores MeanMaxSim)
        loss    = 1/B * sum_i  -log( exp(s(q_i, p_i) / tau) / sum_{d in D} exp(s(q_i, d) / tau) )

    This is sentence-transformers' ``MultiVectorMultipleNegativesRankingLoss`` with
    ``scale = 1 / tau`` and the core layer's MaxSim, scored in blocks of ``chunk_elements``.

    Args:
        model: the ``MultiVectorEncoder`` being trained.
        temperature: tau, > 0. Default 1.0, ColBERT's and PyLate's (MaxSim is a sum over query
            tokens, already spread over several units); with MeanMaxSim (scores in [-1, 1])
            use about 0.02-0.05.
        query_mean: score MeanMaxSim instead of MaxSim; default: as the model does
            (``similarity_fn_name``).
        chunk_elements: most elements of one scoring block (padded token vectors and their
            similarities); lower it to save memory.
        mini_batch_size: rows per forward pass of the document encoder (``None``: all at once).
        gather_across_devices: with torch.distributed, score every process's documents as negatives.

    Inputs (the columns of the ``"infonce"`` training view; no labels):
        ``(query, positive)`` or ``(query, positive, negative_1, ..., negative_k)``.
    """

    def __init__(
        self,
        model: MultiVectorEncoder,
        temperature: float = 1.0,
        *,
        query_mean: bool | None = None,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
        mini_batch_size: int | None = None,
        gather_across_devices: bool = False,
    ) -> None:
        self.temperature = check_positive(temperature, "temperature")
        self.query_mean = _query_mean(model, query_mean)
        self.chunk_elements = int(check_positive(chunk_elements, "chunk_elements"))
        super().__init__(
            model,
            scale=1.0 / self.temperature,
            similarity_fct=partial(in_batch_scores, query_mean=self.query_mean, chunk_elements=self.chunk_elements),
            mini_batch_size=mini_batch_size,
            gather_across_devices=gather_across_devices,
        )

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "temperature": self.temperature}


class ColBERTDistillKLLoss(MultiVectorDistillKLDivLoss):
    """Distillation: KL divergence from a teacher's scores over a query's documents to the student's MaxSim.

    Formula, for B queries q_i, each with its own n documents d_i1..d_in and teacher scores
    y_i1..y_in (e.g. a cross-encoder's or an LLM's, written by ``rag-retrieval-train distill``)::

        P_i  = softmax_j( y_ij / teacher_temperature )             teacher distribution
        Q_i  = softmax_j( s(q_i, d_ij) / temperature )             student distribution, s = MaxSim
        loss = temperature^2 * 1/B * sum_i KL(P_i || Q_i)

    Each softmax runs over the query's own documents only. The ``temperature^2`` factor
    (Hinton et al.) keeps gradients comparable across temperatures; at the default 1.0 it is 1.
    This is sentence-transformers' ``MultiVectorDistillKLDivLoss`` with the core layer's MaxSim,
    scored in blocks of ``chunk_elements``.

    Args:
        model: the ``MultiVectorEncoder`` being trained.
        temperature: student temperature, > 0.
        teacher_temperature: teacher temperature, > 0 (match it to the spread of the teacher's scores).
        query_mean: score MeanMaxSim instead of MaxSim; default: as the model does.
        chunk_elements: most elements of one scoring block.
        mini_batch_size: rows per forward pass of the document encoder (``None``: all at once).

    Inputs (the columns of the ``"preference"`` training view):
        ``(query, doc_1, ..., doc_n)`` with ``n >= 2``, and ``labels`` = teacher scores ``(batch, n)``.
    """

    def __init__(
        self,
        model: MultiVectorEncoder,
        temperature: float = 1.0,
        teacher_temperature: float = 1.0,
        *,
        query_mean: bool | None = None,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
        mini_batch_size: int | None = None,
    ) -> None:
        self.query_mean = _query_mean(model, query_mean)
        self.chunk_elements = int(check_positive(chunk_elements, "chunk_elements"))
        super().__init__(
            model,
            similarity_fct=partial(group_scores, query_mean=self.query_mean, chunk_elements=self.chunk_elements),
            student_temperature=check_positive(temperature, "temperature"),
            teacher_temperature=check_positive(teacher_temperature, "teacher_temperature"),
            mini_batch_size=mini_batch_size,
        )
