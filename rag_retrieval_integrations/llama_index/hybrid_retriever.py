"""``BM25Retriever`` and ``HybridRetriever``: the lexical and the fused first stage as LlamaIndex retrievers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..core.engines.qdrant.hybrid import QdrantHybridIndex
from ..core.indexes.base import Index
from ..core.indexes.bm25 import BM25Index
from ..core.indexes.fusion import Fusion, check_fusion
from ..core.indexes.hybrid import HybridIndex
from ..core.options import check_positive_int
from .index_retriever import IndexRetriever


class BM25Retriever(IndexRetriever):
    """Retrieves nodes from a :class:`~rag_retrieval_integrations.core.BM25Index` by BM25 (``bm25s``).

    Only nodes holding a query term are returned, as ``NodeWithScore`` with the BM25 score, best
    first; nodes are indexed on their ``MetadataMode.EMBED`` content and stored whole, as in every
    retriever of this package. Build one with ``from_nodes(nodes, ...)`` (no model):
    :class:`BM25Index` settings (``k1``, ``b``, ``method``, ``stopwords``, ``stemmer``...) go to the
    index, the rest to the retriever.

    Args:
        index: the BM25 index searched.
        similarity_top_k: how many nodes to return.
        score_threshold: drop nodes whose BM25 score is below this.
        callback_manager, verbose, object_map: LlamaIndex's ``BaseRetriever`` arguments.

    Example:
        .. code-block:: python

            from rag_retrieval_integrations.llama_index import BM25Retriever

            retriever = BM25Retriever.from_nodes(nodes, similarity_top_k=20)
            retriever.retrieve("what is a panda?")
    """

    index_class: ClassVar[type[Index]] = BM25Index
    index: BM25Index


class HybridRetriever(IndexRetriever):
    """Retrieves nodes from a :class:`~rag_retrieval_integrations.core.HybridIndex`: each part's ranking
    (BM25, MRL, ColBERT...) fused by reciprocal rank or by normalized scores; ``NodeWithScore`` holds
    the fused score. Put ``RagRetrievalRerank`` after it for the final order.

    Args:
        index: the hybrid index searched.
        similarity_top_k: how many nodes to return.
        score_threshold: drop nodes whose fused score is below this.
        fusion, weights, candidates: override the index's fusion, per-part weights and list depth
            (``None``: the index's own).
        callback_manager, verbose, object_map: LlamaIndex's ``BaseRetriever`` arguments.

    Example:
        .. code-block:: python

            from llama_index.core.query_engine import RetrieverQueryEngine
            from rag_retrieval_integrations.core import BM25Index, MRLIndex
            from rag_retrieval_integrations.llama_index import HybridRetriever, RagRetrievalRerank

            retriever = HybridRetriever.from_nodes(
                nodes, parts={"bm25": BM25Index(), "dense": MRLIndex("./minilm")}, similarity_top_k=50
            )
            engine = RetrieverQueryEngine.from_args(
                retriever, node_postprocessors=[RagRetrievalRerank(model="./my-reranker", top_n=5)], llm=llm
            )
    """

    index_class: ClassVar[type[Index]] = HybridIndex
    engines: ClassVar[Mapping[str, type[Index]]] = {"memory": HybridIndex, "qdrant": QdrantHybridIndex}
    index: HybridIndex | QdrantHybridIndex

    def __init__(
        self,
        index: HybridIndex | QdrantHybridIndex,
        *,
        fusion: Fusion | None = None,
        weights: Mapping[str, float] | None = None,
        candidates: int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(index, (HybridIndex, QdrantHybridIndex)):
            index.check_encodes_queries()
        self.fusion = None if fusion is None else check_fusion(fusion)
        self.weights = None if weights is None else dict(weights)
        self.candidates = None if candidates is None else check_positive_int(candidates, "candidates")
        super().__init__(index, **kwargs)

    def _search_options(self) -> dict[str, Any]:
        return {"fusion": self.fusion, "weights": self.weights, "candidates": self.candidates}
