"""``BM25Retriever`` and ``HybridRetriever``: the lexical and the fused first stage as LangChain retrievers.

``BM25Retriever`` replaces ``langchain_community``'s (rank-bm25 in memory, no deletes, no save),
and ``HybridRetriever`` replaces ``EnsembleRetriever`` (now in ``langchain_classic``): the parts
share one document store, so adds, deletes and saves reach all of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, FiniteFloat, model_validator

from ..adapter_fields import PositiveInt
from ..core.engines.qdrant.hybrid import QdrantHybridIndex
from ..core.indexes.base import Index
from ..core.indexes.bm25 import BM25Index
from ..core.indexes.fusion import Fusion
from ..core.indexes.hybrid import HybridIndex
from .index_retriever import IndexRetriever


class BM25Retriever(IndexRetriever):
    """Retrieves documents from a :class:`~rag_retrieval_integrations.core.BM25Index` by BM25 (``bm25s``).

    Only documents holding a query term are returned, best first, with the BM25 score in
    ``metadata["relevance_score"]``. Build one with ``from_texts(texts, ...)`` /
    ``from_documents(docs, ...)`` (no model): :class:`BM25Index` settings (``k1``, ``b``, ``method``,
    ``stopwords``, ``stemmer``...) go to the index, the rest are the fields.

    Fields:
        index: the BM25 index searched.
        k: how many documents to return.
        score_threshold: drop documents whose BM25 score is below this.

    Example:
        .. code-block:: python

            from rag_retrieval_integrations.langchain import BM25Retriever

            retriever = BM25Retriever.from_documents(docs, k=20, stemmer="english")
            retriever.save("./bm25")                          # BM25Retriever.load("./bm25") later
            retriever.invoke("what is a panda?")
    """

    index_class: ClassVar[type[Index]] = BM25Index

    index: BM25Index = Field(description="The BM25 index searched.")


class HybridRetriever(IndexRetriever):
    """Retrieves documents from a :class:`~rag_retrieval_integrations.core.HybridIndex`: each part's
    ranking (BM25, MRL, ColBERT...) fused by reciprocal rank or by normalized scores.

    Each returned ``Document`` carries the fused score in ``metadata["relevance_score"]``; put a
    reranker on top (``ContextualCompressionRetriever`` with ``RagRetrievalReranker``) for the
    final order. Build one from an index (``HybridRetriever(index=HybridIndex({...}))``) or with
    ``from_documents(docs, parts={"bm25": BM25Index(), "dense": MRLIndex("./minilm")}, k=50)``.

    Fields:
        index: the hybrid index searched.
        k: how many documents to return.
        score_threshold: drop documents whose fused score is below this.
        fusion, weights, candidates: override the index's fusion, per-part weights and list depth
            (``None``: the index's own).

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from rag_retrieval_integrations.core import BM25Index, MRLIndex
            from rag_retrieval_integrations.langchain import HybridRetriever, RagRetrievalReranker

            retriever = HybridRetriever.from_documents(
                docs, parts={"bm25": BM25Index(), "dense": MRLIndex("./minilm")}, fusion="zscore", k=50
            )
            pipeline = ContextualCompressionRetriever(
                base_compressor=RagRetrievalReranker(model="./my-reranker", top_n=5), base_retriever=retriever
            )
            pipeline.invoke("what is a panda?")
    """

    index_class: ClassVar[type[Index]] = HybridIndex
    engines: ClassVar[Mapping[str, type[Index]]] = {"memory": HybridIndex, "qdrant": QdrantHybridIndex}

    index: HybridIndex | QdrantHybridIndex = Field(description="The hybrid index searched.")
    fusion: Fusion | None = Field(default=None, description="rrf, minmax or zscore (None: the index's).")
    weights: dict[str, FiniteFloat] | None = Field(default=None, description="Weight per part (None: the index's).")
    candidates: PositiveInt | None = Field(
        default=None, description="Documents per part and query (None: the index's)."
    )

    @model_validator(mode="after")
    def _parts_encode_queries(self) -> HybridRetriever:
        self.index.check_encodes_queries()  # refused when built, not at the first query
        return self

    def _search_options(self) -> dict[str, Any]:
        return {"fusion": self.fusion, "weights": self.weights, "candidates": self.candidates}
