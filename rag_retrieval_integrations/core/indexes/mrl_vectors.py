"""The vector math of the Matryoshka funnel, shared by ``MRLIndex`` and the vector-store funnel.

A Matryoshka model's vector ``v`` is searched by its prefix ``p = v[:search_dim] / ||v[:search_dim]||``
(for cosine; the Matryoshka loss's own ``truncate_and_normalize``), and the shortlist is re-scored
by the full vectors: ``score(q, d) = <q / ||q||, d / ||d||>``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ..options import check_positive_int
from .faiss_ops import best_of_subset

Similarity = Literal["cosine", "dot"]
VectorDtype = Literal["float32", "float16"]
SIMILARITIES: tuple[str, ...] = ("cosine", "dot")
VECTOR_DTYPES: tuple[str, ...] = ("float32", "float16")

DEFAULT_SHORTLIST_FACTOR = 50
"""Candidates per result: ``search(k=10)`` re-scores the 500 best by the first ``search_dim`` dims
(more if ``shortlist_size`` asks for more); measured in ``benchmarks/mrl_funnel_speed.py``."""


def check_similarity(similarity: Any) -> str:
    if similarity not in SIMILARITIES:
        raise ValueError(
            f"the Matryoshka funnel supports similarity {list(SIMILARITIES)}, got {similarity!r} "
            "(a model's similarity_fn_name must be cosine or dot)"
        )
    return str(similarity)


def check_shortlist_size(shortlist_size: Any) -> int | None:
    return None if shortlist_size is None else check_positive_int(shortlist_size, "shortlist_size")


def shortlist_width(k: int, shortlist_factor: int, shortlist_size: int | None, available: int | None = None) -> int:
    """Candidates the first stage returns: ``max(k * shortlist_factor, shortlist_size)``, at most ``available``."""
    width = max(k * shortlist_factor, shortlist_size or 0)
    return width if available is None else min(width, available)


def full_vectors(vectors: Any, dim: int, similarity: str, name: str = "embeddings") -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``(n, dim)`` array, rows L2-normalized for cosine.

    With unit rows, cosine is an inner product, which is what FAISS and the re-scoring compute.
    """
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} dimensions, got an array of shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    if similarity == "cosine":
        array = array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(array)


def prefix_vectors(vectors: np.ndarray, dim: int, similarity: str) -> np.ndarray:
    """The first ``dim`` dims of each row, as contiguous float32, L2-normalized again for cosine."""
    prefix = np.asarray(vectors[:, :dim], dtype=np.float32)
    if similarity == "cosine":
        prefix = prefix / np.maximum(np.linalg.norm(prefix, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(prefix)


def vector_to_text(vector: np.ndarray, dtype: VectorDtype = "float16") -> str:
    """A full vector as ``"<dtype>:<base64 of its little-endian bytes>"``, to store in a document's metadata.

    A string fits the metadata of every vector store (many accept no lists); float16 takes
    ``dim * 2`` bytes before base64 (about 1 KB for 384 dims).
    """
    if dtype not in VECTOR_DTYPES:
        raise ValueError(f"dtype must be one of {list(VECTOR_DTYPES)}, got {dtype!r}")
    data = np.asarray(vector, dtype=np.dtype(dtype).newbyteorder("<")).reshape(-1).tobytes()
    return f"{dtype}:{base64.b64encode(data).decode('ascii')}"


def vector_from_text(text: Any, dim: int, where: str = "metadata") -> np.ndarray:
    """The float32 vector stored by :func:`vector_to_text`; ``where`` names the document in errors."""
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"{where}: expected a full vector written by vector_to_text, got {text!r:.60}")
    dtype, _, payload = text.partition(":")
    if dtype not in VECTOR_DTYPES:
        raise ValueError(f"{where}: unknown vector dtype {dtype!r}; expected one of {list(VECTOR_DTYPES)}")
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError as e:
        raise ValueError(f"{where}: the stored vector is not valid base64 ({e})") from None
    vector = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
    if vector.shape != (dim,):
        raise ValueError(f"{where}: the stored vector has {vector.size} dimensions, the model gives {dim}")
    return vector.astype(np.float32)


def rescore(query: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores of the best ``k`` ``candidates`` (rows of full vectors) for one full ``query``.

    Both come from :func:`full_vectors` (unit rows for cosine), so the score is their inner
    product. Best first; ties keep the candidates' order.
    """
    scores = candidates @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return order, scores[order]


def rescore_stored(
    query: np.ndarray,
    metadatas: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    k: int,
    *,
    vector_key: str,
    dim: int,
    score_threshold: float | None = None,
    how_to_add: str,
) -> list[tuple[int, float]]:
    """The second stage over a vector store's shortlist: ``(position, score)`` of the ``k`` results
    whose full vectors, stored as text in ``metadata[vector_key]`` (:func:`vector_to_text`), score
    best for the full ``query``; best first, those below ``score_threshold`` dropped.

    ``names`` say which result lacks its vector in the error ("document 'x'"), and ``how_to_add``
    how to add documents that carry one.
    """
    vectors = []
    for metadata, name in zip(metadatas, names):
        if vector_key not in metadata:
            raise ValueError(
                f"{name} from the vector store has no full vector in metadata[{vector_key!r}]: {how_to_add}"
            )
        vectors.append(vector_from_text(metadata[vector_key], dim, f"{name} metadata[{vector_key!r}]"))
    if not vectors:
        return []
    order, scores = rescore(query, np.stack(vectors), k)
    return [(int(i), float(s)) for i, s in zip(order, scores) if score_threshold is None or s >= score_threshold]


_RESCORE_BLOCK_FLOATS = 1 << 22  # float16 candidate vectors converted at once while re-scoring (16 MB of float32)


def rescore_shortlist(
    vectors: np.ndarray, queries: np.ndarray, shortlist: np.ndarray, scores: np.ndarray, rows: np.ndarray
) -> None:
    """Fill ``scores`` and ``rows`` with the best of each query's ``shortlist`` (rows of ``vectors``;
    ``-1`` ends one) by the inner product of the full vectors. Unfilled places keep row ``-1``.

    float32 vectors are scored where they lie (memory-mapped too); float16 ones are converted a
    block of queries' candidates at a time.
    """
    if vectors.dtype == np.float32 and vectors.flags.c_contiguous:
        best_of_subset(queries, vectors, shortlist, scores, rows)
        return
    dim = vectors.shape[1]
    width = shortlist.shape[1]
    block = max(1, _RESCORE_BLOCK_FLOATS // (width * dim))
    for start in range(0, len(queries), block):
        stop = min(start + block, len(queries))
        cand = shortlist[start:stop]
        found = cand >= 0
        gathered = vectors[np.where(found, cand, 0)].astype(np.float32).reshape(-1, dim)
        local = np.where(found, np.arange(cand.size).reshape(cand.shape), -1)
        best_of_subset(queries[start:stop], gathered, local, scores[start:stop], rows[start:stop])
        best = rows[start:stop]
        best[:] = np.where(best >= 0, cand.reshape(-1)[best], -1)
