"""``QdrantMRLIndex``: the Matryoshka funnel on Qdrant's own features.

Each document is a point with two named vectors: ``prefix`` (the first ``search_dim`` dims, with an HNSW
graph and, by default, int8 codes kept in RAM) and ``full`` (the whole vector, no graph, on disk if
``on_disk``). A search is one Qdrant query with a prefetch:

1. **prefetch**: the ``max(k * shortlist_factor, shortlist_size)`` nearest prefixes (HNSW over the int8
   codes, rescored with the original prefixes, ``oversampling`` times as many codes looked at);
2. **query**: those candidates scored by the ``full`` vectors, the ``k`` best returned.

``search(..., exhaustive=True)`` scores every document by its full vector (exact), as ``MRLIndex``'s
exhaustive search does; scores are the same (the model's similarity on the full vectors).
With ``search_dim == dim`` there is no ``prefix`` vector: the full vectors get the graph.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ...indexes.documents import IndexHit
from ...indexes.mrl_encoder import MRL_MODEL_OPTIONS, ModelLike, MRLEncoding, check_model_fits, mrl_settings
from ...indexes.mrl_vectors import (
    DEFAULT_SHORTLIST_FACTOR,
    VECTOR_DTYPES,
    VectorDtype,
    check_shortlist_size,
    full_vectors,
    prefix_vectors,
    shortlist_width,
)
from ...models.embedding import EmbeddingModel
from ...options import check_positive_int
from .connection import Connection
from .index import DEFAULT_CHUNK_SIZE, QdrantIndex
from .spec import QUANTIZATIONS, Quantization, Search, VectorField, check_oversampling

FULL, PREFIX = "full", "prefix"


class QdrantMRLIndex(MRLEncoding, QdrantIndex):
    """An MRL index stored and searched by Qdrant (Qdrant Edge in a folder by default, or a Qdrant server).

    Args:
        model: an embedding checkpoint (path or hub id) or a loaded ``Reranker(..., model_type="embedding")``;
            ``None`` for an index of given vectors (``dim=`` then required).
        path, url, api_key, client, collection, shards, replicas, chunk_size: where the collection lives;
            see :class:`~.index.QdrantIndex`.
        dim, search_dim, similarity: as ``MRLIndex`` (from the model when there is one).
        shortlist_factor, shortlist_size: candidates the prefix stage returns, as ``MRLIndex``.
        vector_dtype: how the full vectors are stored, ``"float32"`` or ``"float16"``.
        quantization: codes for the prefix stage, ``"int8"`` (default), ``"binary"`` or ``None``; the
            original prefixes rescore what the codes find.
        oversampling: codes looked at per prefix candidate (rescored by the original prefixes).
        on_disk: keep the full vectors on disk (memory-mapped): RAM then holds the prefixes and codes.
        hnsw_m, hnsw_ef_construction, hnsw_ef_search: the prefix graph.
        batch_size, show_progress_bar, model_kwargs: the encoder's, as ``MRLIndex``.
        connection: an open collection (what :meth:`load` passes).

    Example::

        index = QdrantMRLIndex("./minilm-mrl", path="./panda-qdrant")   # an embedded Qdrant Edge shard
        index.add(["The giant panda is a bear.", "Paris is in France."], metadatas=[{"src": "a"}, {"src": "b"}])
        index.search("what is a panda?", k=1, filter={"src": "a"})
        index.save("./panda-qdrant")                                     # optimize + flush + manifest
        index = QdrantMRLIndex.load("./panda-qdrant")
    """

    described_as: ClassVar[str] = "a Qdrant MRL index"
    index_format: ClassVar[str] = "rag-retrieval-qdrant-mrl-index"
    manifest_keys: ClassVar[tuple[str, ...]] = ("dim", "search_dim", "similarity", "build", "search")
    build_settings: ClassVar[frozenset[str]] = frozenset(
        {"search_dim", "vector_dtype", "quantization", "on_disk", "hnsw_m", "hnsw_ef_construction"}
    )
    search_settings: ClassVar[frozenset[str]] = frozenset(
        {
            "shortlist_factor",
            "shortlist_size",
            "hnsw_ef_search",
            "oversampling",
            "batch_size",
            "show_progress_bar",
            "chunk_size",
        }
    )
    family: ClassVar[type[EmbeddingModel]] = EmbeddingModel
    model_noun: ClassVar[str] = "embedding model"
    saved_model_options: ClassVar[Mapping[str, str]] = MRL_MODEL_OPTIONS

    def __init__(
        self,
        model: ModelLike | None = None,
        path: str | os.PathLike[str] | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        client: Any = None,
        collection: str | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        dim: int | None = None,
        search_dim: int | None = None,
        similarity: str | None = None,
        shortlist_factor: int = DEFAULT_SHORTLIST_FACTOR,
        shortlist_size: int | None = None,
        vector_dtype: VectorDtype = "float32",
        quantization: Quantization | None = "int8",
        oversampling: float = 2.0,
        on_disk: bool = False,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 100,
        hnsw_ef_search: int = 128,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        connection: Connection | None = None,
    ) -> None:
        if vector_dtype not in VECTOR_DTYPES:
            raise ValueError(f"vector_dtype must be one of {list(VECTOR_DTYPES)}, got {vector_dtype!r}")
        if quantization is not None and quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {list(QUANTIZATIONS)} or None, got {quantization!r}")
        self.encoder, self.dim, self.search_dim, self.similarity = mrl_settings(
            model,
            dim=dim,
            search_dim=search_dim,
            similarity=similarity,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            model_kwargs=model_kwargs,
            index_name="QdrantMRLIndex",
        )
        self.shortlist_factor = check_positive_int(shortlist_factor, "shortlist_factor")
        self.shortlist_size = check_shortlist_size(shortlist_size)
        self.vector_dtype: VectorDtype = vector_dtype
        self.quantization = quantization
        self.oversampling = check_oversampling(oversampling)
        self.on_disk = bool(on_disk)
        self.hnsw_m = check_positive_int(hnsw_m, "hnsw_m")
        self.hnsw_ef_construction = check_positive_int(hnsw_ef_construction, "hnsw_ef_construction")
        self.hnsw_ef_search = check_positive_int(hnsw_ef_search, "hnsw_ef_search")
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
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
        graph = {"hnsw_m": self.hnsw_m, "hnsw_ef_construct": self.hnsw_ef_construction}
        if self.search_dim == self.dim:
            return {
                FULL: VectorField(
                    self.dim,
                    self.similarity,
                    datatype=self.vector_dtype,
                    quantization=self.quantization,
                    on_disk=self.on_disk,
                    **graph,
                )
            }
        return {
            FULL: VectorField(self.dim, self.similarity, datatype=self.vector_dtype, on_disk=self.on_disk, hnsw=False),
            PREFIX: VectorField(self.search_dim, self.similarity, quantization=self.quantization, **graph),
        }

    def _point_vectors(self, vectors: np.ndarray, i: int) -> dict[str, Any]:
        row = vectors[i : i + 1]
        named = {FULL: row[0]}
        if self.search_dim < self.dim:
            named[PREFIX] = prefix_vectors(row, self.search_dim, self.similarity)[0]
        return named

    def search_by_vectors(
        self,
        query_vectors: Any,
        k: int = 10,
        *,
        exhaustive: bool = False,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        shortlist_factor: int | None = None,
        shortlist_size: int | None = None,
    ) -> list[list[IndexHit]]:
        """The ``k`` best documents for each full query vector, best first.

        Args:
            exhaustive: score every document by its full vector (exact) instead of the funnel.
            filter: only documents whose metadata match (``{"lang": "en"}``; a list: any of its values).
            score_threshold: drop documents scoring below this.
            shortlist_factor, shortlist_size: override the index's for this search.
        """
        k = check_positive_int(k, "k")
        queries = full_vectors(query_vectors, self.dim, self.similarity, "query_vectors")
        factor = (
            self.shortlist_factor
            if shortlist_factor is None
            else check_positive_int(shortlist_factor, "shortlist_factor")
        )
        size = self.shortlist_size if shortlist_size is None else check_shortlist_size(shortlist_size)
        searches = []
        for query in queries:
            if exhaustive:
                searches.append(Search(query, FULL, k, exact=True, filter=filter))
                continue
            width = max(shortlist_width(k, factor, size), k)
            quantized = self.oversampling if self.quantization is not None else None
            if self.search_dim == self.dim:
                searches.append(
                    Search(query, FULL, k, hnsw_ef=max(self.hnsw_ef_search, k), oversampling=quantized, filter=filter)
                )
                continue
            prefix = prefix_vectors(query[None, :], self.search_dim, self.similarity)[0]
            shortlist = Search(
                prefix, PREFIX, width, hnsw_ef=max(self.hnsw_ef_search, width), oversampling=quantized, filter=filter
            )
            searches.append(Search(query, FULL, k, prefetches=(shortlist,), filter=filter))
        with self._lock:
            return self._run(searches, score_threshold)

    def _manifest(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "search_dim": self.search_dim,
            "similarity": self.similarity,
            "build": {
                "vector_dtype": self.vector_dtype,
                "quantization": self.quantization,
                "on_disk": self.on_disk,
                "hnsw_m": self.hnsw_m,
                "hnsw_ef_construction": self.hnsw_ef_construction,
            },
            "search": {
                "shortlist_factor": self.shortlist_factor,
                "shortlist_size": self.shortlist_size,
                "hnsw_ef_search": self.hnsw_ef_search,
                "oversampling": self.oversampling,
            },
        }

    @classmethod
    def _from_manifest(
        cls, manifest: dict[str, Any], model: Any, options: dict[str, Any], connection: Connection
    ) -> QdrantMRLIndex:
        settings = {**manifest["build"], **manifest["search"], "search_dim": manifest["search_dim"], **options}
        if model is None:
            return cls(None, dim=manifest["dim"], similarity=manifest["similarity"], connection=connection, **settings)
        check_model_fits(model, manifest, connection.path or "the server")
        return cls(model, connection=connection, **settings)

    def __repr__(self) -> str:
        model = None if self.model is None else self.model.model_name_or_path
        return (
            f"QdrantMRLIndex(model={model!r}, location={self.location}, dim={self.dim}, search_dim={self.search_dim}, "
            f"quantization={self.quantization!r})"
        )
