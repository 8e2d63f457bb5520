"""Matryoshka (MRL) coarse-to-fine retrieval for LangChain: over an ``MRLIndex``, or over any ``VectorStore``.

``MRLRetriever`` searches our FAISS-backed :class:`~rag_retrieval_integrations.core.MRLIndex`.
``MRLVectorStoreRetriever`` puts the first stage in a LangChain ``VectorStore`` (in-memory,
FAISS, or a distributed vector database) holding the ``search_dim``-dim prefixes, each document
carrying its full vector in its metadata, and re-scores the store's shortlist with the full vectors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field, FiniteFloat, PrivateAttr, model_validator

from ..adapter_fields import EmbeddingWrapper, PositiveInt
from ..core.engines.qdrant.mrl import QdrantMRLIndex
from ..core.indexes.base import Index
from ..core.indexes.funnel import VECTOR_KEY, VectorStoreFunnel, first_stage_embeddings
from ..core.indexes.mrl import MRLIndex
from ..core.indexes.mrl_encoder import ModelLike, MRLEncoder
from ..core.indexes.mrl_vectors import DEFAULT_SHORTLIST_FACTOR, VectorDtype
from ..core.text.inputs import check_query
from .index_documents import check_documents
from .index_retriever import SCORE_KEY, IndexRetriever


class MRLRetriever(IndexRetriever):
    """Coarse-to-fine retrieval over an :class:`~rag_retrieval_integrations.core.MRLIndex`.

    The index shortlists ``max(k * shortlist_factor, shortlist_size)`` documents by the first
    ``search_dim`` dims of their vectors (FAISS) and returns the ``k`` best by full-vector similarity. Each result is a
    new ``Document`` (the stored id, text and metadata) with the full-vector score in
    ``metadata[score_key]``, best first.

    Fields:
        index: the ``MRLIndex`` (with a model: it encodes the queries).
        k: how many documents to return; default 4.
        shortlist_factor: candidates per result (``None``: the index's own, 50 by default).
        shortlist_size: the fewest candidates (``None``: the index's own).
        score_threshold: drop documents scoring below this.
        score_key: the metadata key of the score; default ``"relevance_score"``.

    Example:
        .. code-block:: python

            from rag_retrieval_integrations.langchain import MRLRetriever

            # MRLIndex settings (search_dim, index_type, shortlist_factor, vector_dtype...) go to the index
            retriever = MRLRetriever.from_documents(docs, model="./minilm-mrl", k=4)  # search_dim from the checkpoint
            retriever.invoke("what is a panda?")
            retriever.index.save("./mrl-index")          # later: MRLRetriever(index=MRLIndex.load("./mrl-index"))
    """

    index_class: ClassVar[type[Index]] = MRLIndex
    engines: ClassVar[Mapping[str, type[Index]]] = {"faiss": MRLIndex, "qdrant": QdrantMRLIndex}

    index: MRLIndex | QdrantMRLIndex = Field(
        description="The MRL index searched (with a model: it encodes the queries)."
    )
    shortlist_factor: PositiveInt | None = Field(
        default=None, description="Candidates re-scored per result (None: the index's own)."
    )
    shortlist_size: PositiveInt | None = Field(
        default=None, description="The fewest candidates (None: the index's own)."
    )

    @model_validator(mode="after")
    def _index_encodes_queries(self) -> MRLRetriever:
        self.index.check_encodes_queries()  # as LlamaIndex's MRLRetriever: refused when built, not at the first query
        return self

    def _search_options(self) -> dict[str, Any]:
        return {"shortlist_factor": self.shortlist_factor, "shortlist_size": self.shortlist_size}


# Prefixes computed by MRLVectorStoreRetriever for the texts it is adding, so that the vector
# store's own call to embed_documents returns them instead of running the model a second time.
# A ContextVar: it reaches asyncio.to_thread and LangChain's executor, and concurrent calls do not mix.
_PRECOMPUTED: ContextVar[tuple[int, dict[str, list[float]]] | None] = ContextVar(
    "rag_retrieval_mrl_precomputed", default=None
)


class MRLPrefixEmbeddings(EmbeddingWrapper, Embeddings):
    """LangChain ``Embeddings`` giving the first ``search_dim`` dims of a model's vectors, re-normalized.

    The embeddings of a vector store that serves as the first stage of
    :class:`MRLVectorStoreRetriever`: the store indexes these short vectors, the retriever
    keeps the full ones for re-scoring.

    Fields:
        model: an embedding checkpoint folder, hub id, or ``Reranker(path, model_type="embedding")``.
        search_dim: dims kept; default: the smallest Matryoshka dim the checkpoint was trained with.
        model_kwargs, query_prompt, document_prompt, truncate_dim: as for ``RagRetrievalEmbeddings``
            (``truncate_dim`` sets what counts as the full vector).
        batch_size: texts per forward pass (``None``: the model's own).
    """

    search_dim: PositiveInt | None = Field(
        default=None, description="Dims of the first stage (None: the checkpoint's smallest Matryoshka dim)."
    )
    batch_size: PositiveInt | None = Field(default=None, description="Texts per forward pass (None: the model's).")

    _encoder: MRLEncoder = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._encoder = MRLEncoder(self.embedding_model, search_dim=self.search_dim, batch_size=self.batch_size)
        self.search_dim = self._encoder.search_dim

    @property
    def encoder(self) -> MRLEncoder:
        """The model side of the funnel: full vectors and their prefixes."""
        return self._encoder

    @contextmanager
    def precomputed(self, texts: Sequence[str], prefixes: Sequence[list[float]]) -> Iterator[None]:
        """Within the block, :meth:`embed_documents` of exactly these texts returns ``prefixes`` unencoded."""
        token = _PRECOMPUTED.set((id(self), dict(zip(texts, prefixes))))
        try:
            yield
        finally:
            _PRECOMPUTED.reset(token)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """The documents' prefix vectors."""
        current = _PRECOMPUTED.get()
        if current is not None and current[0] == id(self) and all(t in current[1] for t in texts):
            return [current[1][t] for t in texts]
        return self._encoder.prefix(self._encoder.encode_documents(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """The query's prefix vector."""
        return self._encoder.prefix(self._encoder.encode_queries([check_query(text, "text")]))[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread."""
        return await asyncio.to_thread(self.embed_query, text)


class MRLVectorStoreRetriever(BaseRetriever):
    """Coarse-to-fine retrieval with any LangChain ``VectorStore`` as the first stage.

    The store holds each document's ``search_dim``-dim prefix (through :class:`MRLPrefixEmbeddings`)
    and, in ``metadata[vector_key]``, its full vector (a string, which every store's metadata
    accepts). A query is encoded once: the store returns the ``max(k * shortlist_factor,
    shortlist_size)`` nearest by prefix (``similarity_search_by_vector``; the shortlist
    ``MRLIndex`` takes), and those are re-scored with the full vectors
    (:class:`~rag_retrieval_integrations.core.indexes.funnel.VectorStoreFunnel`). Results are new
    ``Document`` objects, best first, without the full vector and with the score in
    ``metadata[score_key]``. So the first stage scales as the store does (a distributed vector
    database), and the re-scoring needs only what the store returns.

    Add documents through :meth:`add_documents` (or :meth:`from_documents`): it encodes each
    document once and stores both vectors.

    Fields:
        vectorstore: the first-stage store, created with ``embedding=MRLPrefixEmbeddings(...)``.
        embeddings: that ``MRLPrefixEmbeddings`` (default: ``vectorstore.embeddings`` when it is one).
        k: how many documents to return; default 4.
        shortlist_factor: candidates fetched from the store per result; default 50 (each one a network payload
            on a remote store: lower it there if recall allows).
        shortlist_size: the fewest candidates fetched, whatever ``k`` (``None``: ``k * shortlist_factor``).
        score_threshold: drop documents scoring below this.
        score_key: the metadata key of the score; default ``"relevance_score"``.
        vector_key: the metadata key holding the full vector; default ``"mrl_vector"``.
        vector_dtype: ``"float16"`` (default) or ``"float32"`` for the stored full vectors.

    Example:
        .. code-block:: python

            from langchain_core.vectorstores import InMemoryVectorStore
            from rag_retrieval_integrations.langchain import MRLPrefixEmbeddings, MRLVectorStoreRetriever

            embeddings = MRLPrefixEmbeddings(model="./minilm-mrl")               # e.g. 64 of 384 dims
            store = InMemoryVectorStore(embedding=embeddings)                    # or any VectorStore
            retriever = MRLVectorStoreRetriever(vectorstore=store, k=4)
            retriever.add_documents(docs)
            retriever.invoke("what is a panda?")
    """

    vectorstore: VectorStore
    embeddings: MRLPrefixEmbeddings | None = None
    k: PositiveInt = Field(default=4, description="How many documents to return.")
    shortlist_factor: PositiveInt = Field(
        default=DEFAULT_SHORTLIST_FACTOR, description="Candidates fetched from the store per result."
    )
    shortlist_size: PositiveInt | None = Field(
        default=None, description="The fewest candidates fetched from the store."
    )
    score_threshold: FiniteFloat | None = Field(default=None, description="Drop documents scoring below this.")
    score_key: str = Field(default=SCORE_KEY, description="Metadata key of the full-vector score.")
    vector_key: str = Field(default=VECTOR_KEY, description="Metadata key of the stored full vector.")
    vector_dtype: VectorDtype = Field(default="float16", description="Precision of the stored full vectors.")

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @model_validator(mode="after")
    def _resolve_embeddings(self) -> MRLVectorStoreRetriever:
        own = getattr(self.vectorstore, "embeddings", None)
        self.embeddings = first_stage_embeddings(
            self.embeddings, own, MRLPrefixEmbeddings, "the vector store", "embedding", "embeddings"
        )
        return self

    @property
    def encoder(self) -> MRLEncoder:
        assert self.embeddings is not None
        return self.embeddings.encoder

    @property
    def funnel(self) -> VectorStoreFunnel:
        """The funnel's steps with this retriever's settings."""
        return _funnel(self.encoder, self.shortlist_factor, self.shortlist_size, self.vector_key, self.vector_dtype)

    @classmethod
    def from_documents(
        cls,
        documents: Sequence[Document],
        model: ModelLike,
        vectorstore_cls: type[VectorStore] | None = None,
        *,
        ids: Sequence[str] | None = None,
        search_dim: int | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        vectorstore_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> MRLVectorStoreRetriever:
        """A new store of ``vectorstore_cls`` (default ``InMemoryVectorStore``) over ``documents``,
        built with its own ``from_documents``; ``kwargs`` are the retriever's fields."""
        if vectorstore_cls is None:
            from langchain_core.vectorstores import InMemoryVectorStore

            vectorstore_cls = InMemoryVectorStore
        embeddings = MRLPrefixEmbeddings(model=model, search_dim=search_dim, model_kwargs=dict(model_kwargs or {}))
        documents = check_documents(documents)
        funnel = _funnel(
            embeddings.encoder,
            kwargs.get("shortlist_factor", DEFAULT_SHORTLIST_FACTOR),
            kwargs.get("shortlist_size"),
            kwargs.get("vector_key", VECTOR_KEY),
            kwargs.get("vector_dtype", "float16"),
        )
        stored, prefixes = _with_full_vectors(funnel, documents)
        extra = dict(vectorstore_kwargs or {})
        if ids is not None:
            extra["ids"] = list(ids)
        with embeddings.precomputed([d.page_content for d in documents], prefixes):
            store = vectorstore_cls.from_documents(stored, embeddings, **extra)
        return cls(vectorstore=store, embeddings=embeddings, **kwargs)

    def add_documents(self, documents: Sequence[Document], **kwargs: Any) -> list[str]:
        """Encode ``documents`` once and add them to the store, prefixes as vectors, full vectors in the
        metadata; ``kwargs`` (e.g. ``ids``) go to the store's ``add_documents``. Returns the store's ids."""
        assert self.embeddings is not None
        documents = check_documents(documents)
        stored, prefixes = _with_full_vectors(self.funnel, documents)
        with self.embeddings.precomputed([d.page_content for d in documents], prefixes):
            return self.vectorstore.add_documents(stored, **kwargs)

    async def aadd_documents(self, documents: Sequence[Document], **kwargs: Any) -> list[str]:
        """:meth:`add_documents` with the model in a worker thread and the store's async path."""
        assert self.embeddings is not None
        documents = check_documents(documents)
        stored, prefixes = await asyncio.to_thread(_with_full_vectors, self.funnel, documents)
        with self.embeddings.precomputed([d.page_content for d in documents], prefixes):
            return await self.vectorstore.aadd_documents(stored, **kwargs)

    def _query(self, query: str) -> tuple[np.ndarray, list[float]]:
        return self.funnel.encode_query([check_query(query)])

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        full, prefix = self._query(query)
        shortlist = self.vectorstore.similarity_search_by_vector(prefix, k=self.funnel.shortlist_width(self.k))
        return self._rescore(full, shortlist)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        full, prefix = await asyncio.to_thread(self._query, query)
        shortlist = await self.vectorstore.asimilarity_search_by_vector(prefix, k=self.funnel.shortlist_width(self.k))
        return self._rescore(full, shortlist)

    def _rescore(self, query: np.ndarray, shortlist: list[Document]) -> list[Document]:
        funnel = self.funnel
        best = funnel.rescore(
            query,
            [doc.metadata for doc in shortlist],
            [f"document {doc.id!r}" for doc in shortlist],
            self.k,
            self.score_threshold,
            "add documents through MRLVectorStoreRetriever.add_documents (or from_documents)",
        )
        return [
            shortlist[i].model_copy(
                update={"metadata": {**funnel.without_vector(shortlist[i].metadata), self.score_key: score}}
            )
            for i, score in best
        ]


def _funnel(
    encoder: MRLEncoder, factor: int, size: int | None, vector_key: str, vector_dtype: VectorDtype
) -> VectorStoreFunnel:
    return VectorStoreFunnel(
        encoder, shortlist_factor=factor, shortlist_size=size, vector_key=vector_key, vector_dtype=vector_dtype
    )


def _with_full_vectors(
    funnel: VectorStoreFunnel, documents: list[Document]
) -> tuple[list[Document], list[list[float]]]:
    """Copies of ``documents`` carrying their full vector in the metadata, and their prefixes."""
    metadatas, prefixes = funnel.encode_documents(
        [doc.page_content for doc in documents], [doc.metadata for doc in documents]
    )
    return [doc.model_copy(update={"metadata": m}) for doc, m in zip(documents, metadatas)], prefixes
