"""Matryoshka (MRL) coarse-to-fine search: FAISS over the first ``k`` dims, full vectors re-score.

A model trained with the Matryoshka loss packs most of what its vectors say into their first
dimensions. Search then runs as a funnel:

1. **Shortlist.** A FAISS index over the first ``search_dim`` dims of every document vector
   (re-normalized, as the Matryoshka loss trained them) returns ``max(k * shortlist_factor,
   shortlist_size)`` candidates (all documents, if fewer): exhaustively (``"flat"``) or
   approximately (``"hnsw"``, ``"ivf"``).
2. **Re-score.** The candidates' stored full vectors are scored against the full query vector
   with the model's similarity (cosine: the score ``Reranker(...).rank`` gives); the best ``k``
   are returned. FAISS does this in one call for a batch of queries
   (``knn_inner_products_by_idx``: no copy of the candidates' vectors, no Python loop).

**Choosing the shortlist.** A shortlist covering every document makes the funnel exhaustive
search, whatever ``search_dim``; a shorter one trades agreement with exhaustive search for speed,
and the shortlist a given agreement needs grows with the index. ``k * shortlist_factor``
(default 500 candidates for ``k = 10``) suits thousands of documents; for a large index set
``shortlist_size`` as well (a number of candidates, whatever ``k``).
``benchmarks/mrl_funnel_speed.py`` measured, on 100,000 vectors shaped like an MRL-trained
all-MiniLM-L6-v2's (384 dims, one thread): ``search_dim=128, shortlist_size=3000`` found 99.3% of
exhaustive search's top 10, 3.7x faster than ``faiss.IndexFlatIP`` in batches of 64 queries and
3.3x one query at a time; a 64-dim shortlist found 98.3% with 10,000 candidates (2.8x), a 32-dim
one 91.6%. The speed-up is over FAISS's query-by-query scan: from ``queries x dim >= 128,000``
a call (334 queries at 384 dims) FAISS computes exhaustive search as one BLAS product, which the
funnel does not beat.

``search_dim`` defaults to the smallest dimension the checkpoint was trained with, read from our
metadata (``rag_retrieval.json``, ``"matryoshka_dims"``, written by ``rag-retrieval-train
embedding --mrl_dims``). With ``search_dim`` equal to the full dimension and a ``"flat"`` index
the funnel is exhaustive search.

**Memory per document**: the full vectors, ``dim * 2`` bytes in float16 or ``dim * 4`` in
float32, plus FAISS's ``search_dim * 4`` bytes (and, for HNSW, its graph links: about
``hnsw_m * 8`` bytes). :meth:`MRLIndex.load` with ``mmap=True`` leaves the full vectors on disk:
a search then reads only its candidates' rows.

The folder written by :meth:`MRLIndex.save` holds ``manifest.json`` (format, model, dimensions,
FAISS settings, counts, and the size and SHA-256 of every other file), ``vectors.npy`` (the full
vectors, ``(documents, dim)``), ``documents.jsonl`` (id, text, metadata per document, in row
order) and ``faiss.index`` (the shortlist index, row ``i`` = document ``i``).

The same two stages work over any vector store holding the prefixes, with the full vectors in
each document's metadata (:func:`vector_to_text`); the LangChain and LlamaIndex
``MRLVectorStoreRetriever`` classes do that.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
from tqdm.auto import tqdm

from ..models.base import BaseReranker
from ..models.checkpoint import CheckpointInfo, read_checkpoint
from ..models.embedding import EmbeddingReranker
from ..text.inputs import check_docs, check_positive_int, check_query
from .folder import (
    DOCUMENTS_FILE,
    CorruptIndexError,
    IndexHit,
    atomic_save,
    check_ids,
    check_metadatas,
    check_same_weights,
    documents_problem,
    import_faiss,
    load_index_model,
    model_record,
    read_documents,
    read_manifest,
    split_documents,
    verify_checksums,
    write_documents,
    write_manifest,
)

logger = logging.getLogger(__name__)

Similarity = Literal["cosine", "dot"]
IndexType = Literal["flat", "hnsw", "ivf"]
VectorDtype = Literal["float32", "float16"]
SIMILARITIES: tuple[str, ...] = ("cosine", "dot")
INDEX_TYPES: tuple[str, ...] = ("flat", "hnsw", "ivf")
VECTOR_DTYPES: tuple[str, ...] = ("float32", "float16")

DEFAULT_SHORTLIST_FACTOR = 50
"""Candidates per result: ``search(k=10)`` re-scores the 500 best by the first ``search_dim`` dims
(more if ``shortlist_size`` asks for more).

Chosen from ``benchmarks/mrl_funnel_speed.py``: with a 32-dim shortlist of an MRL-trained
all-MiniLM-L6-v2, 10 candidates per result find 88% of exhaustive search's top 10 on SQuAD's 913
paragraphs, 50 find 99.3%; re-scoring 500 candidates costs little next to the shortlist scan
once the funnel pays off (tens of thousands of documents and more)."""

INDEX_FORMAT = "rag-retrieval-mrl-index"
INDEX_FORMAT_VERSION = 1
VECTORS_FILE = "vectors.npy"
FAISS_FILE = "faiss.index"

_RESCORE_BLOCK_FLOATS = 1 << 22  # float16 candidate vectors converted at once while re-scoring (16 MB of float32)
_IVF_TRAINING_POINTS_PER_CENTROID = 256
_LOAD_OPTIONS = ("shortlist_factor", "shortlist_size", "hnsw_ef_search", "nprobe", "batch_size", "show_progress_bar")

ModelLike = Union[EmbeddingReranker, str, "os.PathLike[str]"]


# ---- the vector math shared by the index and the vector-store retrievers -------------------------


def trained_matryoshka_dims(model: EmbeddingReranker | CheckpointInfo | str | os.PathLike[str]) -> list[int]:
    """The Matryoshka dims a checkpoint was trained with, ascending (``[]`` if it records none).

    Read from our metadata file (``rag_retrieval.json``, key ``"matryoshka_dims"``).
    """
    if isinstance(model, BaseReranker):
        info = model.checkpoint
    elif isinstance(model, CheckpointInfo):
        info = model
    else:
        info = read_checkpoint(model)
    dims = info.metadata.get("matryoshka_dims") or []
    if not isinstance(dims, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(
            f"{info.path!r}: matryoshka_dims in rag_retrieval.json must be positive integers, got {dims!r}"
        )
    return sorted(set(dims))


def check_similarity(similarity: Any) -> str:
    if similarity not in SIMILARITIES:
        raise ValueError(
            f"the Matryoshka funnel supports similarity {list(SIMILARITIES)}, got {similarity!r} "
            "(a model's similarity_fn_name must be cosine or dot)"
        )
    return str(similarity)


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
    """The first ``dim`` dims of each row, as contiguous float32, L2-normalized again for cosine.

    The re-normalization is the Matryoshka loss's own (``truncate_and_normalize``): a prefix is
    searched the way it was trained.
    """
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


def _best_of_subset(
    queries: np.ndarray, vectors: np.ndarray, subset: np.ndarray, scores: np.ndarray, rows: np.ndarray
) -> None:
    """For each query, the best ``scores.shape[1]`` rows of ``vectors`` among its ``subset`` (``-1`` ends
    one), by inner product, best first, written into ``scores`` and ``rows`` (unfilled: row ``-1``).

    FAISS's ``knn_inner_products_by_idx``: SIMD inner products and a heap per query, in C++.
    Every array is C-contiguous: float32 ``queries`` and ``vectors``, int64 ``subset`` and ``rows``.
    """
    faiss = import_faiss("MRL index")
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


def _check_shortlist_size(shortlist_size: Any) -> int | None:
    return None if shortlist_size is None else check_positive_int(shortlist_size, "shortlist_size")


# ---- the model side -------------------------------------------------------------------------------


def _load_model(model: ModelLike, model_kwargs: Mapping[str, Any] | None = None) -> EmbeddingReranker:
    return load_index_model(model, model_kwargs, EmbeddingReranker, "embedding model")


class MRLEncoder:
    """A bi-encoder's full vectors and their first ``search_dim`` dims: the model side of the funnel.

    Args:
        model: an embedding checkpoint (path or hub id) or a loaded ``Reranker(..., model_type="embedding")``.
            Its "full" vectors are what it encodes (``truncate_dim`` included, if it was loaded with one).
        search_dim: dims of the shortlist stage; default: the smallest Matryoshka dim the
            checkpoint was trained with (see :func:`trained_matryoshka_dims`), else all of them.
        batch_size: texts per forward pass (default: the model's).
        show_progress_bar: progress bar while encoding documents (default: the model's setting).
        model_kwargs: options for ``Reranker(...)`` when ``model`` is a path.
    """

    def __init__(
        self,
        model: ModelLike,
        *,
        search_dim: int | None = None,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = _load_model(model, model_kwargs)
        self.dim = self.model.embedding_dim
        self.similarity = check_similarity(self.model.model.similarity_fn_name)
        self.matryoshka_dims = trained_matryoshka_dims(self.model)
        self.search_dim = self._resolve_search_dim(search_dim)
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.show_progress_bar = show_progress_bar

    def _resolve_search_dim(self, search_dim: int | None) -> int:
        if search_dim is not None:
            return check_search_dim(search_dim, self.dim)
        usable = [d for d in self.matryoshka_dims if d <= self.dim]
        if usable:
            return usable[0]
        logger.warning(
            "%r records no Matryoshka dims (rag_retrieval.json has no matryoshka_dims: not trained with mrl_dims); "
            "the shortlist uses all %d dims, which makes the funnel an exhaustive search: pass search_dim= to "
            "search a prefix",
            self.model.model_name_or_path,
            self.dim,
        )
        return self.dim

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Full document vectors (float32, unit rows for cosine), encoded in chunks under a progress bar."""
        texts = check_docs(texts, "texts")
        chunk = max(256, 8 * (self.batch_size or self.model.batch_size))
        show = self.model._show_progress() if self.show_progress_bar is None else self.show_progress_bar
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # one truncation warning for the whole build, not one per chunk
        with (
            self.model.truncation_scope("index build"),
            tqdm(total=len(texts), desc="Encoding", unit="doc", disable=not show) as progress,
        ):
            for start in range(0, len(texts), chunk):
                batch = self.model.encode_documents(texts[start : start + chunk], batch_size=self.batch_size)
                out[start : start + len(batch)] = full_vectors(batch, self.dim, self.similarity, "the model's vectors")
                progress.update(len(batch))
        return out

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Full query vectors (float32, unit rows for cosine), with the model's query prompt."""
        vectors = self.model.encode_queries(check_docs(queries, "queries"), batch_size=self.batch_size)
        return full_vectors(vectors, self.dim, self.similarity, "the model's vectors")

    def prefix(self, vectors: np.ndarray) -> np.ndarray:
        """The shortlist vectors: the first ``search_dim`` dims, re-normalized for cosine."""
        return prefix_vectors(vectors, self.search_dim, self.similarity)

    def settings(self) -> dict[str, Any]:
        """What the index manifest records about the model."""
        return {
            "model": self.model.model_name_or_path,
            "dim": self.dim,
            "similarity": self.similarity,
            "truncate_dim": self.model.truncate_dim,
            "max_length": self.model.max_length,
            "query_prompt": self.model.query_prompt,
            "document_prompt": self.model.document_prompt,
            "matryoshka_dims": self.matryoshka_dims,
        }

    def __repr__(self) -> str:
        return f"MRLEncoder({self.model.model_name_or_path!r}, dim={self.dim}, search_dim={self.search_dim})"


def check_search_dim(search_dim: Any, dim: int) -> int:
    if not isinstance(search_dim, int) or isinstance(search_dim, bool) or not 0 < search_dim <= dim:
        raise ValueError(f"search_dim must be an integer from 1 to the vectors' dimension {dim}, got {search_dim!r}")
    return search_dim


# ---- the index --------------------------------------------------------------------------------------


class MRLIndex:
    """Full document vectors plus a FAISS index over their first ``search_dim`` dims; searched coarse to fine.

    See the module docstring for the two stages, the memory per document and the folder layout.

    Args:
        model: an embedding checkpoint (path or hub id) or a loaded ``Reranker(..., model_type="embedding")``,
            to encode texts; ``None`` for an index of vectors given to :meth:`add` (``embeddings=``)
            and searched with :meth:`search_vectors`.
        dim: the full vectors' dimension; taken from the model (and checked against it) when there is one.
        search_dim: dims of the shortlist stage; default: the smallest Matryoshka dim the checkpoint
            was trained with; without a model (or such dims), ``dim`` (exhaustive).
        similarity: ``"cosine"`` or ``"dot"``; taken from the model (``similarity_fn_name``) when there is one.
        shortlist_factor: candidates re-scored per result (``k * shortlist_factor`` in all); see
            :data:`DEFAULT_SHORTLIST_FACTOR`.
        shortlist_size: the fewest candidates re-scored per query, whatever ``k``: the shortlist is
            ``max(k * shortlist_factor, shortlist_size)`` documents (all of them, if fewer).
            ``None`` (default): ``k * shortlist_factor`` alone. For large indexes: see "Choosing
            the shortlist" in the module docstring.
        index_type: ``"flat"`` (exact shortlist), ``"hnsw"`` (graph, approximate) or ``"ivf"``
            (clusters, approximate; trained on the first documents added).
        vector_dtype: ``"float32"`` or ``"float16"`` (half the memory; scores within about 1e-3).
        hnsw_m, hnsw_ef_construction, hnsw_ef_search: HNSW graph degree and search breadths
            (``ef_search`` is raised to the shortlist size when smaller).
        nlist: IVF clusters; default ``4 * sqrt(n)`` of the first documents added (at most ``n / 39``).
        nprobe: IVF clusters searched per query.
        batch_size, show_progress_bar, model_kwargs: see :class:`MRLEncoder`.

    Example::

        index = MRLIndex("./minilm-mrl")                      # search_dim from the checkpoint, e.g. 64
        index.add(["The giant panda is a bear.", "Paris is in France."], metadatas=[{"src": "a"}, {"src": "b"}])
        index.search("what is a panda?", k=1)                 # [IndexHit(id=..., text='The giant panda ...', score=...)]
        index.save("./panda-index")
        index = MRLIndex.load("./panda-index", mmap=True)     # model from the manifest, full vectors left on disk
    """

    def __init__(
        self,
        model: ModelLike | None = None,
        *,
        dim: int | None = None,
        search_dim: int | None = None,
        similarity: Similarity | None = None,
        shortlist_factor: int = DEFAULT_SHORTLIST_FACTOR,
        shortlist_size: int | None = None,
        index_type: IndexType = "flat",
        vector_dtype: VectorDtype = "float32",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 80,
        hnsw_ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 16,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if index_type not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {list(INDEX_TYPES)}, got {index_type!r}")
        if vector_dtype not in VECTOR_DTYPES:
            raise ValueError(f"vector_dtype must be one of {list(VECTOR_DTYPES)}, got {vector_dtype!r}")
        self.encoder: MRLEncoder | None = None
        if model is not None:
            self.encoder = MRLEncoder(
                model,
                search_dim=search_dim,
                batch_size=batch_size,
                show_progress_bar=show_progress_bar,
                model_kwargs=model_kwargs,
            )
            if dim is not None and dim != self.encoder.dim:
                raise ValueError(
                    f"dim={dim} differs from the {self.encoder.dim} dims that model "
                    f"{self.encoder.model.model_name_or_path!r} gives; leave dim unset"
                )
            if similarity is not None and similarity != self.encoder.similarity:
                raise ValueError(
                    f"similarity={similarity!r} differs from model "
                    f"{self.encoder.model.model_name_or_path!r}'s {self.encoder.similarity!r}"
                )
            dim, search_dim, similarity = self.encoder.dim, self.encoder.search_dim, self.encoder.similarity
        elif dim is None:
            raise ValueError("an MRLIndex without a model needs dim= (the dimension of the vectors you will add)")
        elif model_kwargs:
            raise ValueError("model_kwargs only apply with a model")
        self.dim = check_positive_int(dim, "dim")
        self.search_dim = check_search_dim(self.dim if search_dim is None else search_dim, self.dim)
        self.similarity = check_similarity("cosine" if similarity is None else similarity)
        self.shortlist_factor = check_positive_int(shortlist_factor, "shortlist_factor")
        self.shortlist_size = _check_shortlist_size(shortlist_size)
        self.index_type: IndexType = index_type
        self.vector_dtype: VectorDtype = vector_dtype
        self.hnsw_m = check_positive_int(hnsw_m, "hnsw_m")
        self.hnsw_ef_construction = check_positive_int(hnsw_ef_construction, "hnsw_ef_construction")
        self.hnsw_ef_search = check_positive_int(hnsw_ef_search, "hnsw_ef_search")
        self.nlist = None if nlist is None else check_positive_int(nlist, "nlist")
        self.nprobe = check_positive_int(nprobe, "nprobe")
        self._lock = threading.RLock()
        self._vectors = np.zeros((0, self.dim), dtype=vector_dtype)  # capacity rows; the first _count are used
        self._count = 0
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._metadatas: list[dict[str, Any]] = []
        self._row: dict[str, int] = {}
        self._faiss: Any = None

    # ---- contents -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row

    @property
    def ids(self) -> list[str]:
        """Ids of the documents, in row order (the rows :meth:`search_vectors` returns)."""
        with self._lock:
            return list(self._ids)

    @property
    def nbytes(self) -> dict[str, int]:
        """Bytes held per part: ``"vectors"`` (the full vectors) and ``"faiss"`` (the shortlist index)."""
        with self._lock:
            faiss_bytes = 0
            if self._faiss is not None:
                faiss_bytes = int(import_faiss("MRL index").serialize_index(self._faiss).nbytes)
            return {"vectors": int(self._count * self.dim * np.dtype(self.vector_dtype).itemsize), "faiss": faiss_bytes}

    def get(self, doc_id: str) -> IndexHit:
        """The stored text and metadata of a document (``score`` and ``rank`` are 0)."""
        with self._lock:
            row = self._row_of(doc_id)
            return IndexHit(doc_id, self._texts[row], dict(self._metadatas[row]))

    def vector(self, doc_id: str) -> np.ndarray:
        """The stored full vector of a document (float32, a copy)."""
        with self._lock:
            return self._vectors[self._row_of(doc_id)].astype(np.float32)

    def _row_of(self, doc_id: str) -> int:
        if doc_id not in self._row:
            raise KeyError(f"no document with id {doc_id!r} in the index")
        return self._row[doc_id]

    # ---- adding and deleting ------------------------------------------------------------------

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Full vectors of ``texts`` with the index's model (for ``add(..., embeddings=)``)."""
        return self._require_encoder("encode texts").encode_documents(texts)

    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        embeddings: Any = None,
    ) -> list[str]:
        """Add documents, encoded with the model (or given as ``embeddings``); returns their ids.

        Args:
            texts: the documents (each cut at the model's ``max_length`` tokens: split long
                documents first, e.g. with a text splitter).
            ids: one unique string per document (default: random UUIDs). An id already in the
                index replaces that document.
            metadatas: one JSON-serializable dict (or ``None``) per document, returned with it.
            embeddings: the documents' full vectors, ``(len(texts), dim)``, instead of encoding
                ``texts`` (normalized here for cosine).
        """
        texts = check_docs(texts, "texts")
        ids = check_ids(ids, len(texts))
        metadatas = check_metadatas(metadatas, len(texts))
        if embeddings is None:
            vectors = self._require_encoder("encode texts (or pass embeddings=)").encode_documents(texts)
        else:
            vectors = full_vectors(embeddings, self.dim, self.similarity)
            if len(vectors) != len(texts):
                raise ValueError(f"embeddings has {len(vectors)} rows for {len(texts)} texts; give one per text")
        if not texts:
            return []
        with self._lock:
            replaced = [i for i in ids if i in self._row]
            if replaced:
                self.delete(replaced)
            stored = vectors.astype(self.vector_dtype)
            self._coarse_add(stored)
            self._append_rows(stored)
            for doc_id, text, metadata in zip(ids, texts, metadatas):
                self._row[doc_id] = len(self._ids)
                self._ids.append(doc_id)
                self._texts.append(text)
                self._metadatas.append(metadata)
        return ids

    def _append_rows(self, rows: np.ndarray) -> None:
        needed = self._count + len(rows)
        if needed > len(self._vectors) or not self._vectors.flags.writeable:  # grow (or leave a memory map)
            grown = np.empty((max(needed, 2 * self._count, 1024), self.dim), dtype=self.vector_dtype)
            grown[: self._count] = self._vectors[: self._count]
            self._vectors = grown
        self._vectors[self._count : needed] = rows
        self._count = needed

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id; an id not in the index is a ``KeyError`` (nothing is removed then).

        The shortlist index is rebuilt from the remaining vectors: cheap for ``"flat"`` and
        ``"ivf"`` (the clusters are kept), a new graph for ``"hnsw"``: delete in batches.
        """
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise TypeError(f"ids must be a list of strings, got {type(ids).__name__}")
        with self._lock:
            missing = [i for i in ids if i not in self._row]
            if missing:
                raise KeyError(f"{len(missing)} id(s) not in the index, e.g. {missing[:3]}; nothing was deleted")
            gone = {self._row[i] for i in ids}
            if not gone:
                return
            keep = np.array([r for r in range(self._count) if r not in gone], dtype=np.int64)
            self._vectors = np.ascontiguousarray(self._vectors[keep])
            self._count = len(keep)
            self._ids = [self._ids[r] for r in keep]
            self._texts = [self._texts[r] for r in keep]
            self._metadatas = [self._metadatas[r] for r in keep]
            self._row = {doc_id: r for r, doc_id in enumerate(self._ids)}
            if self._faiss is not None:
                self._faiss.reset()  # keeps what was trained (IVF centroids)
                if self._count:
                    self._faiss.add(prefix_vectors(self._vectors[: self._count], self.search_dim, self.similarity))

    def _coarse_add(self, stored: np.ndarray) -> None:
        """Add the prefixes of ``stored`` (the vectors as kept) to FAISS, creating it on first use."""
        prefixes = prefix_vectors(stored, self.search_dim, self.similarity)
        if self._faiss is None:
            self._faiss = self._new_faiss(prefixes)
        self._faiss.add(prefixes)

    def _new_faiss(self, sample: np.ndarray) -> Any:
        faiss = import_faiss("MRL index")
        d = self.search_dim
        if self.index_type == "flat":
            return faiss.IndexFlatIP(d)
        if self.index_type == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.hnsw_ef_construction
            return index
        nlist = self.nlist or max(1, min(int(4 * math.sqrt(len(sample))), len(sample) // 39))
        if len(sample) < nlist:
            raise ValueError(
                f"index_type='ivf' with nlist={nlist} needs at least {nlist} documents in the first add, got "
                f"{len(sample)}; add more documents at once, lower nlist, or use index_type='flat'"
            )
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        n_train = min(len(sample), _IVF_TRAINING_POINTS_PER_CENTROID * nlist)
        index.cp.seed = 0
        index.train(sample[np.sort(rng.choice(len(sample), n_train, replace=False))])
        self.nlist = nlist
        return index

    # ---- search -------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        shortlist_factor: int | None = None,
        shortlist_size: int | None = None,
        score_threshold: float | None = None,
    ) -> list[IndexHit]:
        """The ``k`` best documents for ``query`` by full-vector similarity among the shortlist, best first.

        Args:
            query: the query text.
            k: how many documents to return (fewer if the index is smaller).
            shortlist_factor: candidates per result for this call (default: the index's).
            shortlist_size: the fewest candidates for this call (default: the index's).
            score_threshold: drop documents scoring below this (a document scoring exactly it is kept).
        """
        return self.search_many(
            [check_query(query)],
            k,
            shortlist_factor=shortlist_factor,
            shortlist_size=shortlist_size,
            score_threshold=score_threshold,
        )[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        shortlist_factor: int | None = None,
        shortlist_size: int | None = None,
        score_threshold: float | None = None,
    ) -> list[list[IndexHit]]:
        """:meth:`search` for several queries, encoded in one batched pass."""
        queries = check_docs(queries, "queries")
        if not queries:
            return []
        vectors = self._require_encoder("encode queries").encode_queries(queries)
        return self.search_by_vectors(
            vectors,
            k,
            shortlist_factor=shortlist_factor,
            shortlist_size=shortlist_size,
            score_threshold=score_threshold,
        )

    def search_by_vectors(
        self,
        query_vectors: Any,
        k: int = 10,
        *,
        shortlist_factor: int | None = None,
        shortlist_size: int | None = None,
        score_threshold: float | None = None,
    ) -> list[list[IndexHit]]:
        """:meth:`search` with full query vectors given, ``(queries, dim)``; one list of hits per query."""
        with self._lock:
            scores, rows = self.search_vectors(
                query_vectors, k, shortlist_factor=shortlist_factor, shortlist_size=shortlist_size
            )
            hits = [
                [
                    IndexHit(self._ids[r], self._texts[r], dict(self._metadatas[r]), float(s), rank)
                    for rank, (s, r) in enumerate(zip(row_scores, row_ids), start=1)
                    if r >= 0 and (score_threshold is None or s >= score_threshold)
                ]
                for row_scores, row_ids in zip(scores, rows)
            ]
        return hits

    def search_vectors(
        self,
        query_vectors: Any,
        k: int = 10,
        *,
        shortlist_factor: int | None = None,
        shortlist_size: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The funnel on raw arrays, as FAISS's ``search``: ``(scores, rows)``, each ``(queries, k)``, best first.

        ``rows`` index :attr:`ids` (valid until the next add or delete); ``-1`` (score ``-inf``)
        pads the results of an index holding fewer than ``k`` documents.
        """
        k = check_positive_int(k, "k")
        factor = (
            self.shortlist_factor
            if shortlist_factor is None
            else check_positive_int(shortlist_factor, "shortlist_factor")
        )
        floor = self.shortlist_size if shortlist_size is None else _check_shortlist_size(shortlist_size)
        queries = full_vectors(query_vectors, self.dim, self.similarity, "query_vectors")
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        with self._lock:
            n = self._count
            if n == 0 or len(queries) == 0:
                return scores, rows
            width = min(n, max(k * factor, floor or 0))
            _, shortlist = self._faiss.search(
                prefix_vectors(queries, self.search_dim, self.similarity), width, params=self._search_params(width)
            )
            self._rescore(queries, shortlist, scores, rows)
        scores[rows < 0] = -np.inf
        rows[~np.isfinite(scores)] = -1
        return scores, rows

    def _rescore(self, queries: np.ndarray, shortlist: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> None:
        """Fill ``scores`` and ``rows`` with the best of each query's ``shortlist`` (rows; ``-1`` ends one)
        by the inner product of the full vectors. Unfilled places keep row ``-1``.

        float32 vectors are scored where they lie (memory-mapped too); float16 ones are converted a
        block of queries' candidates at a time.
        """
        vectors = self._vectors
        if vectors.dtype == np.float32 and vectors.flags.c_contiguous:
            _best_of_subset(queries, vectors[: self._count], shortlist, scores, rows)
            return
        width = shortlist.shape[1]
        block = max(1, _RESCORE_BLOCK_FLOATS // (width * self.dim))
        for start in range(0, len(queries), block):
            stop = min(start + block, len(queries))
            cand = shortlist[start:stop]
            found = cand >= 0
            gathered = vectors[np.where(found, cand, 0)].astype(np.float32).reshape(-1, self.dim)
            local = np.where(found, np.arange(cand.size).reshape(cand.shape), -1)
            _best_of_subset(queries[start:stop], gathered, local, scores[start:stop], rows[start:stop])
            best = rows[start:stop]
            best[:] = np.where(best >= 0, cand.reshape(-1)[best], -1)

    def _search_params(self, width: int) -> Any:
        faiss = import_faiss("MRL index")
        if self.index_type == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(self.hnsw_ef_search, width))
        if self.index_type == "ivf":
            return faiss.SearchParametersIVF(nprobe=min(self.nprobe, self._faiss.nlist))
        return None

    def _require_encoder(self, what: str) -> MRLEncoder:
        if self.encoder is None:
            raise ValueError(f"this MRLIndex has no model to {what}; create or load it with model=")
        return self.encoder

    # ---- persistence ----------------------------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to ``folder`` (created if needed; an index already there is replaced)."""
        faiss = import_faiss("MRL index")
        target = Path(folder)
        with self._lock, atomic_save(target, (VECTORS_FILE, DOCUMENTS_FILE, FAISS_FILE)) as folder:
            np.save(folder / VECTORS_FILE, self._vectors[: self._count], allow_pickle=False)
            write_documents(folder / DOCUMENTS_FILE, self._ids, self._texts, self._metadatas)
            files = [VECTORS_FILE, DOCUMENTS_FILE]
            if self._faiss is not None:
                faiss.write_index(self._faiss, str(folder / FAISS_FILE))
                files.append(FAISS_FILE)
            manifest = {
                "format": INDEX_FORMAT,
                "format_version": INDEX_FORMAT_VERSION,
                "model": None
                if self.encoder is None
                else model_record(self.encoder.settings(), self.encoder.model.model_name_or_path),
                "num_documents": self._count,
                "dim": self.dim,
                "search_dim": self.search_dim,
                "similarity": self.similarity,
                "vector_dtype": self.vector_dtype,
                "faiss": {
                    "index_type": self.index_type,
                    "hnsw_m": self.hnsw_m,
                    "hnsw_ef_construction": self.hnsw_ef_construction,
                    "nlist": self.nlist,
                },
                "search": {
                    "shortlist_factor": self.shortlist_factor,
                    "shortlist_size": self.shortlist_size,
                    "hnsw_ef_search": self.hnsw_ef_search,
                    "nprobe": self.nprobe,
                },
            }
            write_manifest(folder, manifest, files)
        return target

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        model: ModelLike | None = None,
        *,
        mmap: bool = False,
        verify: bool = True,
        model_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> MRLIndex:
        """Open an index written by :meth:`save`.

        Args:
            folder: the index folder.
            model: the model to encode queries (and new documents) with; default: the one
                recorded in the manifest (none for an index built from vectors). A model giving
                vectors of another dimension or similarity than the index's is an error.
            mmap: leave the full vectors on disk, memory-mapped (read-only until the next add
                or delete, which loads them); RAM then holds the shortlist index only.
            verify: check every file's SHA-256 against the manifest (reads the whole index once).
            model_kwargs: options for ``Reranker(...)`` when the model is loaded from a path.
            **options: search options overriding the saved ones (``shortlist_factor``,
                ``shortlist_size``, ``hnsw_ef_search``, ``nprobe``, ``batch_size``, ``show_progress_bar``).

        Raises:
            IndexNotFoundError: ``folder`` does not exist.
            CorruptIndexError: no valid manifest, or a file missing, truncated or changed.
        """
        faiss = import_faiss("MRL index")
        folder = Path(folder)
        manifest = _read_manifest(folder)
        settings = manifest["model"]
        if model is None and settings is not None:
            saved = {
                "max_length": settings.get("max_length"),
                "truncate_dim": settings.get("truncate_dim"),
                "query_prompt": settings.get("query_prompt"),
                "document_prompt": settings.get("document_prompt"),
            }
            model_kwargs = {**{k: v for k, v in saved.items() if v is not None}, **dict(model_kwargs or {})}
            model = settings["model"]
        unknown = sorted(set(options) - set(_LOAD_OPTIONS))
        if unknown:
            raise TypeError(f"MRLIndex.load got unexpected option(s) {unknown}; it takes {list(_LOAD_OPTIONS)}")
        faiss_settings = manifest["faiss"]
        common = {
            "search_dim": manifest["search_dim"],
            "vector_dtype": manifest["vector_dtype"],
            "index_type": faiss_settings["index_type"],
            "hnsw_m": faiss_settings["hnsw_m"],
            "hnsw_ef_construction": faiss_settings["hnsw_ef_construction"],
            "nlist": faiss_settings["nlist"],
            **manifest["search"],
            **options,
        }
        if model is None:
            index = cls(None, dim=manifest["dim"], similarity=manifest["similarity"], **common)
        else:
            loaded = _load_model(model, model_kwargs)
            _check_model_fits(loaded, manifest, folder)
            check_same_weights(settings or {}, loaded.model_name_or_path, folder)
            index = cls(loaded, **common)
        if verify:
            verify_checksums(folder, manifest)
        try:
            vectors = np.load(folder / VECTORS_FILE, mmap_mode="r" if mmap else None, allow_pickle=False)
            documents = read_documents(folder / DOCUMENTS_FILE)
            faiss_index = faiss.read_index(str(folder / FAISS_FILE)) if FAISS_FILE in manifest["files"] else None
        except (ValueError, OSError, RuntimeError, json.JSONDecodeError) as e:
            raise CorruptIndexError(f"{folder} holds an unreadable index file: {e}") from None
        _check_contents(folder, manifest, vectors, documents, faiss_index)
        index._vectors = vectors
        index._count = len(vectors)
        index._ids, index._texts, index._metadatas = split_documents(documents)
        index._row = {doc_id: r for r, doc_id in enumerate(index._ids)}
        index._faiss = faiss_index
        return index

    def __repr__(self) -> str:
        model = None if self.encoder is None else self.encoder.model.model_name_or_path
        return (
            f"MRLIndex(model={model!r}, documents={len(self)}, dim={self.dim}, search_dim={self.search_dim}, "
            f"index_type={self.index_type!r}, shortlist_factor={self.shortlist_factor}, "
            f"shortlist_size={self.shortlist_size})"
        )


def _check_model_fits(model: EmbeddingReranker, manifest: dict[str, Any], folder: Path) -> None:
    """A model loading an index must give vectors of the index's dimension and similarity."""
    dim, similarity = model.embedding_dim, model.model.similarity_fn_name
    built_with = (manifest["model"] or {}).get("model")
    if dim != manifest["dim"]:
        raise ValueError(
            f"model {model.model_name_or_path!r} gives {dim}-dim vectors but the index at {str(folder)!r} holds "
            f"{manifest['dim']}-dim ones (built with {built_with!r}); load it with a model of that dimension"
        )
    if similarity != manifest["similarity"]:
        raise ValueError(
            f"model {model.model_name_or_path!r} scores by {similarity!r} but the index at {str(folder)!r} holds "
            f"vectors for {manifest['similarity']!r} (built with {built_with!r})"
        )


def _read_manifest(folder: Path) -> dict[str, Any]:
    return read_manifest(
        folder,
        kind="an MRL",
        writer="MRLIndex.save",
        index_format=INDEX_FORMAT,
        version=INDEX_FORMAT_VERSION,
        keys=("model", "num_documents", "dim", "search_dim", "similarity", "vector_dtype", "faiss", "search"),
        required_files=(VECTORS_FILE, DOCUMENTS_FILE),
    )


def _check_contents(
    folder: Path, manifest: dict[str, Any], vectors: np.ndarray, documents: list[Any], faiss_index: Any
) -> None:
    n, dim, search_dim = manifest["num_documents"], manifest["dim"], manifest["search_dim"]
    problems = []
    if vectors.dtype != np.dtype(manifest["vector_dtype"]) or vectors.shape != (n, dim):
        problems.append(
            f"{VECTORS_FILE} is {vectors.dtype} {vectors.shape}, expected {manifest['vector_dtype']} ({n}, {dim})"
        )
    if problem := documents_problem(documents, n):
        problems.append(problem)
    if n and (faiss_index is None or faiss_index.ntotal != n or faiss_index.d != search_dim):
        problems.append(f"{FAISS_FILE} does not index the {n} {search_dim}-dim prefixes")
    if problems:
        raise CorruptIndexError(f"{folder} is inconsistent: " + "; ".join(problems))
