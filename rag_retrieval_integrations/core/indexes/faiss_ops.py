"""Every FAISS call the indexes make: importing it, building their FAISS indexes (ColBERT's IVF over
token vectors, MRL's flat / HNSW / IVF shortlist over prefixes), adding in float32 slices, per-search
parameters, and inner products over a subset of rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_ADD_SLICE = 65_536  # FAISS takes float32: float16 vectors are converted this many rows at a time
_IVF_SQ8_TRAINING_POINTS_PER_CENTROID = 64  # ColBERT's k-means sample
_IVF_FLAT_TRAINING_POINTS_PER_CENTROID = 256  # MRL's
MIN_POINTS_PER_CENTROID = 39  # FAISS's minimum for k-means


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the indexes need FAISS: pip install 'rag-retrieval[index]'") from err
    return faiss


def add_with_ids(index: Any, vectors: np.ndarray, first_id: int) -> None:
    """Add ``vectors`` under the ids ``first_id, first_id + 1, ...``, converted to float32 in slices."""
    ids = np.arange(first_id, first_id + len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), _ADD_SLICE):
        index.add_with_ids(np.asarray(vectors[start : start + _ADD_SLICE], np.float32), ids[start : start + _ADD_SLICE])


def _train(index: Any, vectors: np.ndarray, n_train: int) -> None:
    """Train ``index`` on ``n_train`` rows of ``vectors`` drawn without replacement (seeded: a rebuild repeats it)."""
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(vectors), min(len(vectors), n_train), replace=False))
    index.cp.seed = 0
    index.train(np.asarray(vectors[sample], dtype=np.float32))


def ivf_sq8(vectors: np.ndarray, nlist: int, nprobe: int) -> Any:
    """An inner-product IVF index with an 8-bit scalar quantizer, trained on ``vectors`` (not added)."""
    faiss = import_faiss()
    dim = vectors.shape[1]
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    _train(index, vectors, _IVF_SQ8_TRAINING_POINTS_PER_CENTROID * nlist)
    index.nprobe = min(nprobe, nlist)
    return index


def shortlist_index(
    index_type: str, sample: np.ndarray, *, hnsw_m: int, hnsw_ef_construction: int, nlist: int | None
) -> tuple[Any, int | None]:
    """A new inner-product index of ``index_type`` over ``sample``'s dimension, and its ``nlist`` (IVF).

    IVF is trained on ``sample`` (default ``nlist``: ``4 * sqrt(n)``, at most ``n / 39``); nothing is added.
    """
    faiss = import_faiss()
    d = sample.shape[1]
    if index_type == "flat":
        return faiss.IndexFlatIP(d), nlist
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = hnsw_ef_construction
        return index, nlist
    nlist = nlist or max(1, min(int(4 * math.sqrt(len(sample))), len(sample) // MIN_POINTS_PER_CENTROID))
    if len(sample) < nlist:
        raise ValueError(
            f"index_type='ivf' with nlist={nlist} needs at least {nlist} documents in the first add, got "
            f"{len(sample)}; add more documents at once, lower nlist, or use index_type='flat'"
        )
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    _train(index, sample, _IVF_FLAT_TRAINING_POINTS_PER_CENTROID * nlist)
    return index, nlist


def search_params(index_type: str, index: Any, width: int, *, hnsw_ef_search: int, nprobe: int) -> Any:
    """FAISS search parameters for a shortlist ``width`` deep (``None`` for a flat index)."""
    faiss = import_faiss()
    if index_type == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=max(hnsw_ef_search, width))
    if index_type == "ivf":
        return faiss.SearchParametersIVF(nprobe=min(nprobe, index.nlist))
    return None


def serialized_bytes(index: Any) -> int:
    return int(import_faiss().serialize_index(index).nbytes)


def best_of_subset(
    queries: np.ndarray, vectors: np.ndarray, subset: np.ndarray, scores: np.ndarray, rows: np.ndarray
) -> None:
    """For each query, the best ``scores.shape[1]`` rows of ``vectors`` among its ``subset`` (``-1`` ends
    one), by inner product, best first, written into ``scores`` and ``rows`` (unfilled: row ``-1``).

    FAISS's ``knn_inner_products_by_idx``: SIMD inner products and a heap per query, in C++.
    Every array is C-contiguous: float32 ``queries`` and ``vectors``, int64 ``subset`` and ``rows``.
    """
    faiss = import_faiss()
    if not (scores.flags.c_contiguous and rows.flags.c_contiguous):  # written through raw pointers
        raise ValueError("scores and rows must be C-contiguous")
    queries, vectors, subset = (np.ascontiguousarray(a) for a in (queries, vectors, subset))
    nq, width = subset.shape
    faiss.knn_inner_products_by_idx(
        faiss.swig_ptr(queries),
        faiss.swig_ptr(vectors),
        faiss.swig_ptr(subset),
        queries.shape[1],
        nq,
        len(vectors),
        width,
        scores.shape[1],
        faiss.swig_ptr(scores),
        faiss.swig_ptr(rows),
        width,
    )
