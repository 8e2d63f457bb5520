"""``QdrantColBERTIndex``: late interaction on Qdrant's multivectors, compared by MaxSim in the engine.

Each document is a point whose ``colbert`` vector is the list of its token vectors (``vector_dtype``, Qdrant's
``MultiVectorComparator.MaxSim``, no HNSW graph: a multivector is found by a scan). A search is one
Qdrant query:

- with ``quantization`` (``"binary"`` by default: 16 B per 128-dim token, or ``"int8"``), the scan runs
  over the quantized codes (kept in RAM), and the ``k * oversampling`` best are rescored by MaxSim on the
  original vectors, which ``on_disk=True`` (default) leaves on disk: the process then holds the codes
  alone (23 B per token at 20,000 documents, top-10 agreement with exact MaxSim 1.0, in
  ``benchmarks/results/index_scale.md``);
- ``search(..., exhaustive=True)``, or ``quantization=None``, scores every document by exact MaxSim on
  the original vectors: the score ``ColBERTIndex`` gives (within 1e-5 with ``vector_dtype="float32"``,
  which stores the same float16-rounded values; within about 1e-3 in float16, where Qdrant also rounds
  the query).

With ``pooled=True`` the index also stores each document's mean token vector (normalized, with an HNSW
graph); a search then takes the ``max_candidates`` documents nearest by it (``prefetch``) and scores only
those by exact MaxSim: a graph search instead of a scan, at the cost of the candidates the mean misses.

Qdrant quantizes a segment when it optimizes it (:meth:`~.index.QdrantIndex.save`, :meth:`~.index.QdrantIndex.optimize`);
until then, searches are exact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Union

import numpy as np

from ...indexes.colbert import COLBERT_SETTINGS
from ...indexes.colbert_encoding import COLBERT_MODEL_OPTIONS, ColBERTEncoding
from ...indexes.documents import IndexHit
from ...indexes.index_model import load_index_model, warn_on_setting_changes
from ...indexes.mrl_vectors import VECTOR_DTYPES, VectorDtype
from ...models.colbert import ColBERTReranker
from ...options import check_positive_int
from .connection import Connection
from .index import DEFAULT_CHUNK_SIZE, QdrantIndex
from .spec import QUANTIZATIONS, Quantization, Search, VectorField, check_oversampling

TOKENS, POOLED = "colbert", "pooled"

ModelLike = Union[ColBERTReranker, str, "os.PathLike[str]"]


class QdrantColBERTIndex(ColBERTEncoding, QdrantIndex):
    """A ColBERT index stored and searched by Qdrant (Qdrant Edge in a folder by default, or a Qdrant server).

    Args:
        model: a ColBERT checkpoint (path or hub id) or a loaded ``Reranker(..., model_type="colbert")``.
        path, url, api_key, client, collection, shards, replicas, chunk_size: where the collection lives;
            see :class:`~.index.QdrantIndex`.
        quantization: codes the first pass scans, ``"binary"`` (default), ``"int8"`` or ``None`` (exact MaxSim).
            One bit per dimension suits ColBERT's usual 128 dims; below about 64, use ``"int8"``.
        vector_dtype: how the original token vectors are stored, ``"float16"`` (default) or ``"float32"``.
        pooled: also store the mean token vector with an HNSW graph, and take candidates by it.
        max_candidates: documents the pooled stage passes to exact MaxSim (with ``pooled``).
        oversampling: documents rescored by exact MaxSim per result (``k * oversampling``).
        on_disk: keep the original token vectors on disk (memory-mapped; default), the codes in RAM.
        batch_size, show_progress_bar, model_kwargs: the encoder's, as ``ColBERTIndex``.
        connection: an open collection (what :meth:`load` passes).

    Example::

        index = QdrantColBERTIndex("./my-colbert", path="./colbert-qdrant")   # binary codes in RAM, vectors on disk
        index.add(["The giant panda is a bear.", "Paris is in France."])
        index.search("what is a panda?", k=1)
    """

    described_as: ClassVar[str] = "a Qdrant ColBERT index"
    index_format: ClassVar[str] = "rag-retrieval-qdrant-colbert-index"
    manifest_keys: ClassVar[tuple[str, ...]] = ("dim", "build", "search")
    build_settings: ClassVar[frozenset[str]] = frozenset({"quantization", "vector_dtype", "on_disk", "pooled"})
    search_settings: ClassVar[frozenset[str]] = frozenset(
        {"oversampling", "max_candidates", "batch_size", "show_progress_bar", "chunk_size"}
    )
    family: ClassVar[type[ColBERTReranker]] = ColBERTReranker
    model_noun: ClassVar[str] = "ColBERT model"
    saved_model_options: ClassVar[Mapping[str, str]] = COLBERT_MODEL_OPTIONS

    model: ColBERTReranker

    def __init__(
        self,
        model: ModelLike,
        path: str | os.PathLike[str] | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        client: Any = None,
        collection: str | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        quantization: Quantization | None = "binary",
        oversampling: float = 8.0,
        vector_dtype: VectorDtype = "float16",
        on_disk: bool = True,
        pooled: bool = False,
        max_candidates: int = 256,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        connection: Connection | None = None,
    ) -> None:
        if quantization is not None and quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {list(QUANTIZATIONS)} or None, got {quantization!r}")
        if vector_dtype not in VECTOR_DTYPES:
            raise ValueError(f"vector_dtype must be one of {list(VECTOR_DTYPES)}, got {vector_dtype!r}")
        self.model = load_index_model(model, model_kwargs, self.family, self.model_noun)
        self.dim = self.model.embedding_dim
        self.quantization = quantization
        self.oversampling = check_oversampling(oversampling)
        self.vector_dtype: VectorDtype = vector_dtype
        self.on_disk = bool(on_disk)
        self.pooled = bool(pooled)
        self.max_candidates = check_positive_int(max_candidates, "max_candidates")
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.show_progress_bar = show_progress_bar
        self._connect(
            path,
            url=url,
            api_key=api_key,
            client=client,
            collection=collection,
            shards=shards,
            replicas=replicas,
            connection=connection,
        )

    def _fields(self) -> dict[str, VectorField]:
        fields = {
            TOKENS: VectorField(
                self.dim,
                "dot",
                multivector=True,
                datatype=self.vector_dtype,
                quantization=self.quantization,
                on_disk=self.on_disk,
                hnsw=False,
            )
        }
        if self.pooled:
            fields[POOLED] = VectorField(self.dim, "cosine")
        return fields

    def _point_vectors(self, vectors: list[np.ndarray], i: int) -> dict[str, Any]:
        tokens = vectors[i].astype(np.float32)
        return {TOKENS: tokens, POOLED: tokens.mean(axis=0)} if self.pooled else {TOKENS: tokens}

    def search_by_vectors(
        self,
        query_vectors: Sequence[np.ndarray],
        k: int = 10,
        *,
        exhaustive: bool = False,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        oversampling: float | None = None,
    ) -> list[list[IndexHit]]:
        """The ``k`` best documents by MaxSim for each query's token vectors (from :meth:`encode_queries`), best first.

        Args:
            exhaustive: exact MaxSim over every document's original vectors, not the quantized pass.
            filter: only documents whose metadata match (``{"lang": "en"}``; a list: any of its values).
            score_threshold: drop documents scoring below this.
            oversampling: overrides the index's for this search.
        """
        k = check_positive_int(k, "k")
        oversampling = self.oversampling if oversampling is None else check_oversampling(oversampling)
        queries = []
        for i, q in enumerate(query_vectors):
            if np.ndim(q) != 2 or np.shape(q)[1] != self.dim:
                raise ValueError(f"query_vectors[{i}] must be a (tokens, {self.dim}) array, got shape {np.shape(q)}")
            queries.append(np.asarray(q, dtype=np.float32))
        quantized = not exhaustive and self.quantization is not None
        searches = []
        for q in queries:
            candidates = None
            if self.pooled and not exhaustive:  # a graph search on the mean vectors, then MaxSim on those only
                width = max(self.max_candidates, k)
                candidates = Search(q.mean(axis=0), POOLED, width, hnsw_ef=width, filter=filter)
            searches.append(
                Search(
                    q,
                    TOKENS,
                    k,
                    exact=not quantized,
                    oversampling=oversampling if quantized else None,
                    filter=filter,
                    prefetches=(candidates,) if candidates else (),
                )
            )
        # Qdrant's MaxSim sums over query tokens; a model trained on the mean scores by it
        scales = [1.0 / len(q) if self.model.query_mean else 1.0 for q in queries]
        with self._lock:
            return self._run(searches, score_threshold, scales)

    def _model_settings(self) -> dict[str, Any]:
        return self.model.settings()

    def _manifest(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "build": {
                "quantization": self.quantization,
                "vector_dtype": self.vector_dtype,
                "on_disk": self.on_disk,
                "pooled": self.pooled,
            },
            "search": {"oversampling": self.oversampling, "max_candidates": self.max_candidates},
        }

    @classmethod
    def _from_manifest(
        cls, manifest: dict[str, Any], model: Any, options: dict[str, Any], connection: Connection
    ) -> QdrantColBERTIndex:
        if model is None:
            raise ValueError(f"{cls.__name__}.load needs model=: the manifest records none")
        index = cls(model, connection=connection, **{**manifest["build"], **manifest["search"], **options})
        where = connection.path or manifest["location"]
        if index.dim != manifest["dim"]:
            raise ValueError(
                f"the model gives {index.dim}-dim token vectors but the index at {where} holds "
                f"{manifest['dim']}-dim ones (built with {manifest['model'].get('model')!r}); load it with that model"
            )
        warn_on_setting_changes(index.model.settings(), manifest["model"], where, COLBERT_SETTINGS)
        return index

    def __repr__(self) -> str:
        return (
            f"QdrantColBERTIndex(model={self.model.model_name_or_path!r}, location={self.location}, "
            f"quantization={self.quantization!r}, on_disk={self.on_disk})"
        )
