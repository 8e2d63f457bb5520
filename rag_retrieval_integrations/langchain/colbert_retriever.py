"""``ColBERTRetriever``: a persistent ColBERT index as a LangChain retriever."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from ..core.colbert_index import ColBERTIndex, ModelLike
from ..core.index_folder import IndexHit
from ..core.inputs import check_query
from ..core.shared_model import PositiveInt

SCORE_KEY = "relevance_score"


class ColBERTRetriever(BaseRetriever):
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
    k: PositiveInt = Field(default=4, description="How many documents to return.")
    score_threshold: float | None = Field(default=None, description="Drop documents scoring below this.")
    exhaustive: bool = Field(default=False, description="Score every document exactly instead of FAISS's candidates.")

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

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
        texts, doc_ids, metadatas = _unpack(documents, ids)
        return cls.from_texts(
            texts, model, metadatas=metadatas, ids=doc_ids, model_kwargs=model_kwargs, index_kwargs=index_kwargs,
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

    # ---- changing the index ---------------------------------------------------------------

    def add_documents(self, documents: Sequence[Document], *, ids: Sequence[str] | None = None) -> list[str]:
        """Encode and index more documents; returns their ids (a document with an indexed id replaces it)."""
        texts, doc_ids, metadatas = _unpack(documents, ids)
        return self.index.add(texts, ids=doc_ids, metadatas=metadatas)

    async def aadd_documents(self, documents: Sequence[Document], *, ids: Sequence[str] | None = None) -> list[str]:
        """:meth:`add_documents` in a worker thread, off the event loop."""
        return await asyncio.to_thread(self.add_documents, documents, ids=ids)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id (an unknown id is a ``KeyError`` and nothing is removed)."""
        self.index.delete(ids)

    async def adelete(self, ids: Sequence[str]) -> None:
        """:meth:`delete` in a worker thread."""
        await asyncio.to_thread(self.delete, ids)

    # ---- retrieval ------------------------------------------------------------------------

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._search(query)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return await asyncio.to_thread(self._search, query)

    def _search(self, query: str) -> list[Document]:
        hits = self.index.search(
            check_query(query), self.k, exhaustive=self.exhaustive, score_threshold=self.score_threshold
        )
        return [_document(hit) for hit in hits]


def _document(hit: IndexHit) -> Document:
    return Document(id=hit.id, page_content=hit.text, metadata={**hit.metadata, SCORE_KEY: hit.score})


def _unpack(
    documents: Sequence[Document], ids: Sequence[str] | None
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Texts, ids and metadata of LangChain documents; ``ids`` (if given) override the documents' own,
    and a document without an id gets a random one."""
    if isinstance(documents, (str, Document)) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a list of Documents, got {type(documents).__name__}")
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise TypeError(f"documents[{i}] must be a langchain_core Document, got {type(doc).__name__}: {doc!r:.80}")
    if ids is None:
        ids = [str(doc.id) if doc.id else uuid.uuid4().hex for doc in documents]
    return [doc.page_content for doc in documents], list(ids), [dict(doc.metadata) for doc in documents]
