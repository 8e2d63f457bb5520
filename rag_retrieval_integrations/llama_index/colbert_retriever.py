"""``ColBERTRetriever``: a persistent ColBERT index as a LlamaIndex retriever."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..core.engines.qdrant.colbert import QdrantColBERTIndex
from ..core.indexes.base import Index
from ..core.indexes.colbert import ColBERTIndex
from .index_retriever import IndexRetriever


class ColBERTRetriever(IndexRetriever):
    """Retrieves nodes from a :class:`~rag_retrieval_integrations.core.ColBERTIndex` by ColBERT MaxSim.

    FAISS finds candidates among the indexed token vectors, and the candidates are ranked by their
    exact MaxSim score, the score ``Reranker(..., model_type="colbert")`` gives. Returns
    ``NodeWithScore`` objects, best first: the indexed node itself (stored with LlamaIndex's
    ``node_to_metadata_dict``: its class, metadata, exclusions and relationships come back) with
    the MaxSim score in ``score``. A node is indexed on its ``MetadataMode.EMBED`` content (its
    text with the metadata not excluded from embedding), as ``VectorStoreIndex`` embeds it and
    ``RagRetrievalRerank`` scores it.

    Build one with ``from_nodes(nodes, model, ...)``: the model is a path, hub id or loaded
    ``Reranker(..., model_type="colbert")``; ``model_kwargs`` go to ``Reranker(...)`` when it is a path,
    :class:`ColBERTIndex` settings (``faiss_index``, ``nprobe``, ``max_candidates``...) to the index
    (also as a dict ``index_kwargs``), the rest to the retriever.

    Args:
        index: the ColBERT index searched.
        similarity_top_k: how many nodes to return.
        score_threshold: drop nodes whose MaxSim score is below this.
        exhaustive: score every indexed node exactly instead of FAISS's candidates.
        callback_manager, verbose, object_map: LlamaIndex's ``BaseRetriever`` arguments.

    Example:
        .. code-block:: python

            from llama_index.core.query_engine import RetrieverQueryEngine
            from rag_retrieval_integrations.llama_index import ColBERTRetriever

            retriever = ColBERTRetriever.from_nodes(nodes, model="./my-colbert", similarity_top_k=5)
            retriever.save("./my-index")                      # ColBERTRetriever.load("./my-index") later
            query_engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
            query_engine.query("what is a panda?")
    """

    index_class: ClassVar[type[Index]] = ColBERTIndex
    engines: ClassVar[Mapping[str, type[Index]]] = {"faiss": ColBERTIndex, "qdrant": QdrantColBERTIndex}
    index: ColBERTIndex | QdrantColBERTIndex

    def __init__(self, index: ColBERTIndex | QdrantColBERTIndex, *, exhaustive: bool = False, **kwargs: Any) -> None:
        self.exhaustive = bool(exhaustive)
        super().__init__(index, **kwargs)

    def _search_options(self) -> dict[str, Any]:
        return {"exhaustive": self.exhaustive}
