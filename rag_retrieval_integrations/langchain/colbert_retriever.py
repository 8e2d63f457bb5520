"""``ColBERTRetriever``: a persistent ColBERT index as a LangChain retriever."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from pydantic import Field

from ..core.indexes.colbert import ColBERTIndex, ModelLike
from ..core.indexes.folder import IndexHit
from ..core.text.inputs import check_query
from .index_retriever import IndexRetriever, unpack_documents


class ColBERTRetriever(IndexRetriever):
    """Retrieves documents from a :class:`~rag_retrieval_integrations.core.ColBERTIndex` by ColBERT MaxSim.

    FAISS finds candidates among the indexed token vectors, and the candidates are ranked by their
    exact MaxSim score, the score ``Reranker(..., model_type="colbert")`` gives. Each returned
    ``Document`` has the indexed ``id``, ``page_content`` and metadata, with the score in
    ``metadata["relevance_score"]``, best first. The index is saved and loaded with
    :meth:`save`/:meth:`load`, grows with :meth:`add_documents` and shrinks with :meth:`delete`.

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

    index: ColBERTIndex = Field(description="The ColBERT index searched.")
    exhaustive: bool = Field(default=False, description="Score every document exactly instead of FAISS's candidates.")

    # ---- building -------------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        model: ModelLike,
        *,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        index_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """Index ``texts`` with a ColBERT model (a path, hub id or loaded ``Reranker``) and retrieve from them.

        ``model_kwargs`` go to ``Reranker(...)`` when ``model`` is a path; ``index_kwargs`` to
        :class:`ColBERTIndex` (``faiss_index``, ``nprobe``, ``max_candidates``, ...); ``kwargs`` are
        the retriever's fields (``k``, ``score_threshold``, ...).
        """
        index = ColBERTIndex(model, model_kwargs=model_kwargs, **dict(index_kwargs or {}))
        index.add(texts, ids=ids, metadatas=metadatas)
        return cls(index=index, **kwargs)

    @classmethod
    def from_documents(
        cls,
        documents: Sequence[Document],
        model: ModelLike,
        *,
        ids: Sequence[str] | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        index_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """Index LangChain ``Document``\\ s (their ``id``, ``page_content`` and metadata); see :meth:`from_texts`."""
        texts, doc_ids, metadatas = unpack_documents(documents, ids)
        return cls.from_texts(
            texts,
            model,
            metadatas=metadatas,
            ids=doc_ids,
            model_kwargs=model_kwargs,
            index_kwargs=index_kwargs,
            **kwargs,
        )

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        model: ModelLike | None = None,
        *,
        model_kwargs: Mapping[str, Any] | None = None,
        index_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """A retriever over an index saved with :meth:`save` (the model recorded in it, unless ``model`` is given)."""
        index = ColBERTIndex.load(folder, model, model_kwargs=model_kwargs, **dict(index_kwargs or {}))
        return cls(index=index, **kwargs)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to ``folder``; :meth:`load` reads it back."""
        return self.index.save(folder)

    def _hits(self, query: str) -> list[IndexHit]:
        return self.index.search(
            check_query(query), self.k, exhaustive=self.exhaustive, score_threshold=self.score_threshold
        )
