"""``QdrantHybridIndex``: BM25 and a dense embedding in one Qdrant collection, fused by Qdrant's own RRF.

Each document is a point with two named vectors:

- ``bm25``, a **sparse** vector: each term of the document (analyzed as ``BM25Index`` does: bm25s tokens,
  stopwords, PyStemmer stems) maps to its BM25 term-frequency part
  ``tf / (tf + k1 * (1 - b + b * len / avg_len))``, and Qdrant's ``IDF`` modifier multiplies each query
  term by ``ln(1 + (N - n + 0.5) / (n + 0.5))`` over the collection when it searches: the two make
  Lucene's BM25 (``bm25s``'s ``"lucene"``, ``BM25Index``'s default), with the average length fixed when
  the index is built (``avg_len``; by default the first documents' average);
- ``dense``, the embedding model's vector (HNSW graph).

A search is one Qdrant query: a prefetch of ``candidates`` documents from each part, then reciprocal
rank fusion (``fusion="rrf"``: ``sum_p w_p / (rrf_k + rank_p)``) or Qdrant's distribution-based score
fusion (``"dbsf"``, each part's scores normalized by their mean and 3 standard deviations, then summed).
``search(..., part="bm25" | "dense")`` searches one part alone. Term ids are the CRC-32 of the terms
(no vocabulary to store or share between machines; two terms may collide, about once per 2^31 pairs).
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ...indexes.bm25_text import DEFAULT_TOKEN_PATTERN, BM25Analyzer, import_bm25s
from ...indexes.documents import IndexHit
from ...indexes.mrl_encoder import MRL_MODEL_OPTIONS, ModelLike, check_model_fits, mrl_settings
from ...indexes.mrl_vectors import full_vectors
from ...models.embedding import EmbeddingModel
from ...options import check_positive_int
from .connection import Connection
from .index import DEFAULT_CHUNK_SIZE, QdrantIndex
from .spec import Search, Sparse, SparseField, VectorField

BM25, DENSE = "bm25", "dense"
FUSIONS: tuple[str, ...] = ("rrf", "dbsf")


def _check_weights(weights: Any, fusion: str) -> dict[str, float]:
    if not isinstance(weights, Mapping) or set(weights) - {BM25, DENSE}:
        raise ValueError(f"weights must be a dict over the parts {[BM25, DENSE]}, got {weights!r}")
    if fusion != "rrf":
        raise ValueError("weights apply to fusion='rrf' (Qdrant's dbsf takes none)")
    return {BM25: float(weights.get(BM25, 1.0)), DENSE: float(weights.get(DENSE, 1.0))}


def term_id(term: str) -> int:
    """A term's sparse index: its CRC-32 (stable across processes and machines)."""
    return zlib.crc32(term.encode("utf-8")) & 0x7FFFFFFF


class QdrantHybridIndex(QdrantIndex):
    """BM25 plus a dense embedding in one Qdrant collection (embedded Qdrant Edge, or a server), fused in Qdrant.

    Args:
        model: an embedding checkpoint (path or hub id) or a loaded ``Reranker(..., model_type="embedding")``.
        path, url, api_key, client, collection, shards, replicas, chunk_size: where the collection lives;
            see :class:`~.index.QdrantIndex`.
        k1, b: BM25's term-frequency saturation and length normalization (``BM25Index``'s defaults).
        avg_len: the average document length (terms) BM25 normalizes by; ``None``: the first documents
            added set it (saved with the index).
        lower, token_pattern, stopwords, stemmer: the analyzer, as ``BM25Index``'s.
        fusion: ``"rrf"`` (default) or ``"dbsf"``.
        weights: ``{"bm25": w, "dense": w}`` for RRF (default equal).
        rrf_k: RRF's rank offset.
        candidates: documents each part passes to the fusion.
        batch_size, show_progress_bar, model_kwargs: the encoder's.
        connection: an open collection (what :meth:`load` passes).
    """

    described_as: ClassVar[str] = "a Qdrant hybrid index"
    index_format: ClassVar[str] = "rag-retrieval-qdrant-hybrid-index"
    manifest_keys: ClassVar[tuple[str, ...]] = ("dim", "similarity", "bm25", "analyzer", "search")
    build_settings: ClassVar[frozenset[str]] = frozenset(
        {"k1", "b", "avg_len", "lower", "token_pattern", "stopwords", "stemmer"}
    )
    search_settings: ClassVar[frozenset[str]] = frozenset(
        {"fusion", "weights", "rrf_k", "candidates", "batch_size", "show_progress_bar", "chunk_size"}
    )
    family: ClassVar[type[EmbeddingModel]] = EmbeddingModel
    model_noun: ClassVar[str] = "embedding model"
    saved_model_options: ClassVar[Mapping[str, str]] = MRL_MODEL_OPTIONS

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
        k1: float = 1.5,
        b: float = 0.75,
        avg_len: float | None = None,
        lower: bool = True,
        token_pattern: str = DEFAULT_TOKEN_PATTERN,
        stopwords: str | Sequence[str] | None = "en",
        stemmer: str | None = "english",
        fusion: str = "rrf",
        weights: Mapping[str, float] | None = None,
        rrf_k: int = 60,
        candidates: int = 100,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        connection: Connection | None = None,
    ) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {fusion!r}")
        weights = None if weights is None else _check_weights(weights, fusion)
        for name, value in (("k1", k1), ("b", b)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < 0
                or (name == "b" and value > 1)
            ):
                raise ValueError(f"{name} must be a number >= 0{' and <= 1' if name == 'b' else ''}, got {value!r}")
        if avg_len is not None and (isinstance(avg_len, bool) or not isinstance(avg_len, (int, float)) or avg_len <= 0):
            raise ValueError(f"avg_len must be a positive number or None, got {avg_len!r}")
        import_bm25s()  # a missing extra fails here, not at the first add
        self.encoder, self.dim, _, self.similarity = mrl_settings(
            model,
            dim=None,
            search_dim=None,
            similarity=None,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            model_kwargs=model_kwargs,
            index_name="QdrantHybridIndex",
        )
        self.k1, self.b = float(k1), float(b)
        self.avg_len = None if avg_len is None else float(avg_len)
        self.analyzer = BM25Analyzer(lower, token_pattern, stopwords, stemmer)  # type: ignore[arg-type]
        self.fusion = fusion
        self.weights = weights
        self.rrf_k = check_positive_int(rrf_k, "rrf_k")
        self.candidates = check_positive_int(candidates, "candidates")
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

    @property
    def model(self) -> EmbeddingModel:  # type: ignore[override]
        """The embedding model of the dense part."""
        assert self.encoder is not None
        return self.encoder.model

    def check_encodes_queries(self) -> None:
        """Nothing to refuse: the index always has its model (the retrievers call it when built)."""
        return None

    def _fields(self) -> dict[str, VectorField | SparseField]:
        return {BM25: SparseField(idf=True), DENSE: VectorField(self.dim, self.similarity)}

    # ---- encoding ---------------------------------------------------------------------------

    def encode_documents(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Sparse]]:
        """The dense vectors and BM25 term-frequency sparse vectors of ``texts``."""
        assert self.encoder is not None
        terms = self.analyzer.tokenize(list(texts))
        if self.avg_len is None and terms:
            self.avg_len = max(float(np.mean([len(t) for t in terms])), 1.0)  # fixed from here on, saved
            if self.path is not None:
                self._write_manifest(self.path)
        return self.encoder.encode_documents(texts), [self._document_terms(t) for t in terms]

    def _document_terms(self, terms: list[str]) -> Sparse:
        counts = Counter(term_id(t) for t in terms)
        norm = self.k1 * (1 - self.b + self.b * len(terms) / (self.avg_len or 1.0))
        ids = sorted(counts)
        return Sparse(ids, [counts[i] / (counts[i] + norm) for i in ids])

    def encode_queries(self, queries: Sequence[str]) -> tuple[np.ndarray, list[Sparse]]:
        """The dense vectors and BM25 query sparse vectors (each term weighted by its count) of ``queries``."""
        assert self.encoder is not None
        sparse = []
        for terms in self.analyzer.tokenize(list(queries)):
            counts = Counter(term_id(t) for t in terms)
            ids = sorted(counts)
            sparse.append(Sparse(ids, [float(counts[i]) for i in ids]))
        return self.encoder.encode_queries(queries), sparse

    def _check_vectors(self, vectors: Any, n: int) -> tuple[np.ndarray, list[Sparse]]:
        if not isinstance(vectors, tuple) or len(vectors) != 2:
            raise TypeError("vectors must be (dense vectors, sparse vectors), as encode_documents gives them")
        dense, sparse = full_vectors(vectors[0], self.dim, self.similarity), list(vectors[1])
        if len(dense) != n or len(sparse) != n or not all(isinstance(s, Sparse) for s in sparse):
            raise ValueError(f"vectors must hold {n} dense rows and {n} Sparse vectors, one per text")
        return dense, sparse

    def _point_vectors(self, vectors: tuple[np.ndarray, list[Sparse]], i: int) -> dict[str, Any]:
        dense, sparse = vectors
        named: dict[str, Any] = {DENSE: dense[i]}
        if sparse[i].indices:  # a text without terms has no BM25 vector (Qdrant refuses an empty one)
            named[BM25] = sparse[i]
        return named

    # ---- search -----------------------------------------------------------------------------

    def search_by_vectors(
        self,
        query_vectors: tuple[np.ndarray, list[Sparse]],
        k: int = 10,
        *,
        part: str | None = None,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        fusion: str | None = None,
        weights: Mapping[str, float] | None = None,
        candidates: int | None = None,
    ) -> list[list[IndexHit]]:
        """The ``k`` best documents for each query (from :meth:`encode_queries`), fused, best first.

        Args:
            part: ``"bm25"`` or ``"dense"`` searches that part alone (its own scores); ``None`` fuses both.
            filter: only documents whose metadata match, in both parts.
            score_threshold: drop documents scoring below this (the fused score with ``part=None``).
            fusion, weights, candidates: override the index's for this search.
        """
        k = check_positive_int(k, "k")
        fusion = self.fusion if fusion is None else fusion
        if fusion not in FUSIONS:
            raise ValueError(f"Qdrant fuses by {list(FUSIONS)}, got fusion={fusion!r}")
        weights = self.weights if weights is None else _check_weights(weights, fusion)
        width = self.candidates if candidates is None else check_positive_int(candidates, "candidates")
        if part not in (None, BM25, DENSE):
            raise ValueError(f"part must be 'bm25', 'dense' or None, got {part!r}")
        dense, sparse = query_vectors
        dense = full_vectors(dense, self.dim, self.similarity, "query_vectors")
        searches: list[Search | None] = []
        for vector, terms in zip(dense, sparse, strict=True):
            # a query without a term searches the dense part only (an empty sparse vector finds nothing)
            lexical = Search(terms, BM25, max(width, k), filter=filter) if terms.indices else None
            semantic = Search(vector, DENSE, max(width, k), filter=filter)
            if part == DENSE or (part is None and lexical is None):
                searches.append(Search(vector, DENSE, k, filter=filter))
            elif part == BM25:
                searches.append(Search(terms, BM25, k, filter=filter) if lexical else None)  # no term: no match
            else:
                rrf_weights = None if weights is None or fusion != "rrf" else (weights[BM25], weights[DENSE])
                # Qdrant scores 1 / (k + rank from 0): its k + 1 is the k of fuse and of the RRF paper (rank from 1)
                searches.append(
                    Search(
                        None,
                        None,
                        k,
                        prefetches=(lexical, semantic),
                        fusion=fusion,
                        rrf_k=self.rrf_k + 1,
                        weights=rrf_weights,
                        filter=filter,
                    )
                )
        with self._lock:
            found = iter(self._run([s for s in searches if s is not None], score_threshold))
        return [[] if s is None else next(found) for s in searches]

    # ---- persistence ------------------------------------------------------------------------

    def _model_settings(self) -> dict[str, Any]:
        assert self.encoder is not None
        return self.encoder.settings()

    def _manifest(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "similarity": self.similarity,
            "bm25": {"k1": self.k1, "b": self.b, "avg_len": self.avg_len},
            "analyzer": self.analyzer.as_dict(),
            "search": {
                "fusion": self.fusion,
                "weights": self.weights,
                "rrf_k": self.rrf_k,
                "candidates": self.candidates,
            },
        }

    @classmethod
    def _from_manifest(
        cls, manifest: dict[str, Any], model: Any, options: dict[str, Any], connection: Connection
    ) -> QdrantHybridIndex:
        if model is None:
            raise ValueError(f"{cls.__name__}.load needs model=: the manifest records none")
        check_model_fits(model, manifest, connection.path or "the server")
        settings = {**manifest["bm25"], **manifest["analyzer"], **manifest["search"], **options}
        return cls(model, connection=connection, **settings)

    def __repr__(self) -> str:
        return (
            f"QdrantHybridIndex(model={self.model.model_name_or_path!r}, location={self.location}, "
            f"fusion={self.fusion!r}, avg_len={self.avg_len})"
        )
