"""MaxSim, the late-interaction score of ColBERT, for inference, indexes and training alike.

For a query with token vectors ``q_1..q_n`` and a document with token vectors ``d_1..d_m``
(each L2-normalized)::

    MaxSim(q, d)     = sum_i max_j  q_i . d_j
    MeanMaxSim(q, d) = MaxSim(q, d) / n          (``query_mean=True``: BGE-M3's ColBERT score)

Every user of the score in this project (the ``"colbert"`` family, the ColBERT index and the
ColBERT training losses) calls the functions of this module, so inference ranks exactly as
training scored. The arithmetic is sentence-transformers' (``sentence_transformers.util.maxsim``
and ``sentence_transformers.multi_vector_encoder.scoring``): padded, masked and computed in
chunks of at most ``chunk_elements`` elements, so memory does not grow with
queries x documents x query tokens x document tokens at once, and accumulated in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

TokenVectors = Tensor | np.ndarray
"""One text's token vectors: a ``(tokens, dim)`` tensor or array."""
MultiVectors = Sequence[TokenVectors] | Tensor
"""Several texts' token vectors: a list of ``(tokens_i, dim)`` items, or a padded ``(texts, tokens, dim)`` tensor."""

DEFAULT_CHUNK_ELEMENTS = 32_000_000
"""Elements (queries, documents and the token-similarity block) scored at once: 128 MB in float32."""


def maxsim(
    queries: MultiVectors,
    documents: MultiVectors,
    *,
    query_mean: bool = False,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor:
    """``(len(queries), len(documents))`` MaxSim scores of every query against every document.

    Args:
        queries, documents: lists of ``(tokens_i, dim)`` tensors or arrays (any length each),
            or padded ``(texts, tokens, dim)`` tensors whose all-zero rows are padding.
        query_mean: divide each score by the query's token count (MeanMaxSim, BGE-M3).
        chunk_elements: memory budget of one scoring block, in elements.

    Returns:
        float32 scores on the documents' device. A document without token vectors scores
        ``-1e9``, below every real document.
    """
    from sentence_transformers.util.similarity import maxsim as st_maxsim

    return st_maxsim(
        _as_tensors(queries), _as_tensors(documents), chunk_elements=chunk_elements, length_normalize=query_mean
    )


def maxsim_pairwise(
    queries: MultiVectors,
    documents: MultiVectors,
    *,
    query_mean: bool = False,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor:
    """``(n,)`` MaxSim scores of the aligned pairs ``(queries[i], documents[i])`` (see :func:`maxsim`)."""
    from sentence_transformers.util.similarity import maxsim_pairwise as st_maxsim_pairwise

    if len(queries) != len(documents):
        raise ValueError(
            f"maxsim_pairwise needs one document per query: got {len(queries)} queries and {len(documents)} documents"
        )
    return st_maxsim_pairwise(
        _as_tensors(queries), _as_tensors(documents), chunk_elements=chunk_elements, length_normalize=query_mean
    )


def maxsim_packed(
    queries: Sequence[TokenVectors],
    tokens: TokenVectors,
    offsets: np.ndarray,
    *,
    query_mean: bool = False,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
) -> np.ndarray:
    """``(len(queries), documents)`` MaxSim scores against documents stored packed, without padding.

    The token vectors of all documents are the rows of one ``(total tokens, dim)`` matrix
    (``tokens``, float16 or float32), document ``j`` owning rows ``offsets[j]:offsets[j + 1]``: the
    layout of an index. Scores equal :func:`maxsim` on the same vectors; computed as one matrix
    product of all query tokens with a block of document tokens, then a maximum per document
    segment and a sum per query, block by block (at most ``chunk_elements`` similarities at once).
    A document without tokens scores ``-1e9``.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must start at 0 and not decrease: document j owns rows offsets[j]:offsets[j+1]")
    if offsets[-1] != len(tokens):
        raise ValueError(f"offsets end at {offsets[-1]} but tokens has {len(tokens)} rows")
    query_list = _as_tensors(queries)
    n_docs = len(offsets) - 1
    if not query_list or n_docs == 0:
        return np.zeros((len(query_list), n_docs), dtype=np.float32)
    stacked = torch.cat([q.float().cpu() for q in query_list])  # (all query tokens, dim)
    query_starts = np.cumsum([0] + [len(q) for q in query_list])[:-1]
    lengths = np.diff(offsets)
    scores = np.full((len(query_list), n_docs), -1e9, dtype=np.float32)
    budget = max(chunk_elements or DEFAULT_CHUNK_ELEMENTS, 1) // max(len(stacked), 1)
    first = 0
    nonempty = np.flatnonzero(lengths)  # reduceat cannot express empty segments: they keep -1e9
    while first < len(nonempty):
        # documents first..last (non-empty ones) whose tokens fit the budget, at least one document
        start = offsets[nonempty[first]]
        last = max(first + 1, int(np.searchsorted(offsets[nonempty + 1], start + budget, side="right")))
        docs = nonempty[first:last]
        block = _float32_block(tokens, start, offsets[docs[-1] + 1])
        sims = (stacked @ block.T).numpy()  # (all query tokens, block tokens)
        best = np.maximum.reduceat(sims, offsets[docs] - start, axis=1)  # per query token and document
        scores[:, docs] = np.add.reduceat(best, query_starts, axis=0)
        first = last
    if query_mean:
        counts = np.asarray([max(len(q), 1) for q in query_list], dtype=np.float32)
        scores = np.where(scores > -1e9, scores / counts[:, None], scores)
    return scores


def _float32_block(tokens: TokenVectors, start: int, end: int) -> Tensor:
    """Rows ``start:end`` of packed token vectors as a float32 CPU tensor (torch converts float16 faster)."""
    if isinstance(tokens, Tensor):
        return tokens[start:end].float().cpu()
    block = tokens[start:end]
    if not block.flags.writeable:  # a read-only memory map: torch.from_numpy wants writable memory
        block = np.array(block)
    return torch.from_numpy(block).float()


def in_batch_scores(
    queries: Tensor,
    documents: Tensor,
    queries_mask: Tensor | None = None,
    documents_mask: Tensor | None = None,
    *,
    query_mean: bool = False,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor:
    """Training scores of every query against every document of the batch: ``(Q, D * N)``.

    ``queries``: ``(Q, q_tokens, dim)``; ``documents``: ``(D, N, d_tokens, dim)``, the ``N``
    documents of each of ``D`` queries (positive first). Column ``j * N + n`` holds document ``n``
    of query ``j``, so query ``i``'s positive is at column ``i * N``. Differentiable; the ``N``
    groups are scored one at a time, each in chunks of ``chunk_elements``.
    """
    from sentence_transformers.multi_vector_encoder.scoring import colbert_scores

    return colbert_scores(
        queries,
        documents,
        queries_mask=queries_mask,
        documents_mask=documents_mask,
        chunk_elements=chunk_elements,
        length_normalize=query_mean,
    )


def group_scores(
    queries: Tensor,
    documents: Tensor,
    queries_mask: Tensor | None = None,
    documents_mask: Tensor | None = None,
    *,
    query_mean: bool = False,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor:
    """Training scores of each query against its own ``N`` documents only: ``(Q, N)``.

    ``queries``: ``(Q, q_tokens, dim)``; ``documents``: ``(Q, N, d_tokens, dim)``. Differentiable,
    scored in chunks of ``chunk_elements`` (used for distillation against teacher scores).
    """
    from sentence_transformers.multi_vector_encoder.scoring import colbert_kd_scores

    return colbert_kd_scores(
        queries,
        documents,
        queries_mask=queries_mask,
        documents_mask=documents_mask,
        chunk_elements=chunk_elements,
        length_normalize=query_mean,
    )


def _as_tensors(vectors: MultiVectors) -> list[Tensor] | Tensor:
    """Token vectors as float tensors; float16 arrays (an index's storage) are scored in float32."""
    if isinstance(vectors, Tensor):
        return vectors if vectors.is_floating_point() else vectors.float()
    if isinstance(vectors, np.ndarray) and vectors.dtype != object:
        vectors = list(vectors)
    out = []
    for i, item in enumerate(vectors):
        if isinstance(item, Tensor):
            tensor = item.float() if item.dtype == torch.float16 and item.device.type == "cpu" else item
        else:
            array = np.asarray(item)
            # float16 storage (an index's) is scored in float32: half-precision matmuls are slow on CPUs.
            if array.dtype != np.float32 or not array.flags.writeable:
                array = array.astype(np.float32)
            tensor = torch.from_numpy(array)
        if tensor.ndim != 2:
            raise ValueError(f"token vectors [{i}] must be a (tokens, dim) matrix, got shape {tuple(tensor.shape)}")
        out.append(tensor)
    return out
