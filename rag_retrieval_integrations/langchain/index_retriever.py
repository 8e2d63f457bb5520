"""``IndexRetriever``: any of our persistent indexes (an :class:`~rag_retrieval_integrations.core.Index`)
as a LangChain retriever: documents in and out, add/delete, save/load (``IndexRetrieverMixin``), sync
and async retrieval.
``ColBERTRetriever`` and ``MRLRetriever`` only name their index class and its search options."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, FiniteFloat

from ..adapter_fields import PositiveInt
from ..core.indexes.base import Index
from ..core.indexes.documents import IndexHit
from ..core.indexes.retriever import IndexRetrieverMixin
from ..core.text.inputs import check_query
from .index_documents import unpack_documents

SCORE_KEY = "relevance_score"

_R = TypeVar("_R", bound="IndexRetriever")


class IndexRetriever(IndexRetrieverMixin, BaseRetriever):
    """A LangChain retriever over one of our indexes (``self.index``): each result is a new
    ``Document`` with the indexed id, text and metadata, and the index's score in ``metadata[score_key]``,
    best first."""

    index: Index = Field(description="The index searched.")
    k: PositiveInt = Field(default=4, description="How many documents to return.")
    score_threshold: FiniteFloat | None = Field(default=None, description="Drop documents scoring below this.")
    score_key: str = Field(default=SCORE_KEY, description="Metadata key of the score.")
    search_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="More options of the index's search, as LangChain's VectorStoreRetriever takes them: "
        "{'filter': {'lang': 'en'}} on a Qdrant-engine index.",
    )

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    def _search_options(self) -> dict[str, Any]:
        """The index's own search options (``exhaustive``, ``shortlist_factor``...) from the retriever's fields."""
        return {}

    @classmethod
    def from_texts(
        cls: type[_R],
        texts: Sequence[str],
        model: Any = None,
        *,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> _R:
        """Index ``texts`` with a new index of ``model`` (a path, hub id or loaded ``Reranker``; none for
        BM25 and hybrid retrievers) and retrieve from them.

        ``kwargs`` are the index's settings (its constructor's: ``nprobe``, ``search_dim``,
        ``shortlist_factor``...; ``model_kwargs`` for ``Reranker(...)`` when ``model`` is a path; or a dict
        ``index_kwargs``), then the retriever's fields (``k``, ``score_threshold``...).
        """
        retriever = cls(index=cls._new_index(model, kwargs), **kwargs)
        retriever.index.add(texts, ids=ids, metadatas=metadatas)
        return retriever

    @classmethod
    def from_documents(
        cls: type[_R],
        documents: Sequence[Document],
        model: Any = None,
        *,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> _R:
        """Index LangChain ``Document``\\ s (their ``id``, ``page_content`` and metadata); see :meth:`from_texts`."""
        texts, doc_ids, metadatas = unpack_documents(documents, ids)
        return cls.from_texts(texts, model, metadatas=metadatas, ids=doc_ids, **kwargs)

    def add_documents(self, documents: Sequence[Document], *, ids: Sequence[str] | None = None) -> list[str]:
        """Encode and index documents (ids: ``ids``, else each ``Document.id``, else new UUIDs);
        returns their ids. A document with an id already indexed replaces it."""
        texts, doc_ids, metadatas = unpack_documents(documents, ids)
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

    def _hits(self, query: str) -> list[IndexHit]:
        return self.index.search(
            check_query(query),
            self.k,
            score_threshold=self.score_threshold,
            **{**self._search_options(), **self.search_kwargs},
        )

    def _search(self, query: str) -> list[Document]:
        return [
            Document(id=hit.id, page_content=hit.text, metadata={**hit.metadata, self.score_key: hit.score})
            for hit in self._hits(query)
        ]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._search(query)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return await asyncio.to_thread(self._search, query)
