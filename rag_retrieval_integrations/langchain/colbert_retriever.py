"""``ColBERTRetriever``: a persistent ColBERT index as a LangChain retriever."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from ..core.engines.qdrant.colbert import QdrantColBERTIndex
from ..core.indexes.base import Index
from ..core.indexes.colbert import ColBERTIndex
from .index_retriever import IndexRetriever


class ColBERTRetriever(IndexRetriever):
    """Retrieves documents from a :class:`~rag_retrieval_integrations.core.ColBERTIndex` by ColBERT MaxSim.

    FAISS finds candidates among the indexed token vectors, and the candidates are ranked by their
    exact MaxSim score, the score ``Reranker(..., model_type="colbert")`` gives. Each returned
    ``Document`` has the indexed ``id``, ``page_content`` and metadata, with the score in
    ``metadata["relevance_score"]``, best first. The index is saved and loaded with
    :meth:`save`/:meth:`load`, grows with :meth:`add_documents` and shrinks with :meth:`delete`.

    Build one with ``from_texts(texts, model, ...)`` / ``from_documents(docs, model, ...)``: the
    model is a path, hub id or loaded ``Reranker(..., model_type="colbert")``; ``model_kwargs`` go to
    ``Reranker(...)`` when it is a path, :class:`ColBERTIndex` settings (``faiss_index``, ``nprobe``,
    ``max_candidates``...) to the index (also as a dict ``index_kwargs``), the rest are the fields.

    Fields:
        index: the ColBERT index searched.
        k: how many documents to return.
        score_threshold: drop documents whose MaxSim score is below this.
        exhaustive: score every indexed document exactly instead of FAISS's candidates.

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from rag_retrieval_integrations.langchain import ColBERTRetriever, RagRetrievalReranker

            retriever = ColBERTRetriever.from_documents(docs, model="./my-colbert", k=20)
            retriever.save("./my-index")                      # ColBERTRetriever.load("./my-index") later
            pipeline = ContextualCompressionRetriever(
                base_compressor=RagRetrievalReranker(model="BAAI/bge-reranker-base", top_n=4),
                base_retriever=retriever,
            )
            pipeline.invoke("what is a panda?")
    """

    index_class: ClassVar[type[Index]] = ColBERTIndex
    engines: ClassVar[Mapping[str, type[Index]]] = {"faiss": ColBERTIndex, "qdrant": QdrantColBERTIndex}

    index: ColBERTIndex | QdrantColBERTIndex = Field(description="The ColBERT index searched.")
    exhaustive: bool = Field(default=False, description="Score every document exactly instead of FAISS's candidates.")

    def _search_options(self) -> dict[str, Any]:
        return {"exhaustive": self.exhaustive}
