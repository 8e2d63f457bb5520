"""Matryoshka (MRL) coarse-to-fine retrieval for LlamaIndex: over an ``MRLIndex``, or over any vector store.

``MRLRetriever`` searches our FAISS-backed :class:`~rag_retrieval_integrations.core.MRLIndex`.
``MRLVectorStoreRetriever`` puts the first stage in a ``VectorStoreIndex`` (so in any LlamaIndex
vector store: in-memory, FAISS, or a distributed vector database) holding the ``search_dim``-dim
prefixes, each node carrying its full vector in its metadata, and re-scores the shortlist with
the full vectors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle
from llama_index.core.storage.storage_context import StorageContext

from ..core.indexes.mrl import (
    DEFAULT_SHORTLIST_FACTOR,
    ModelLike,
    MRLEncoder,
    MRLIndex,
    VectorDtype,
    full_vectors,
    rescore_stored,
    vector_to_text,
)
from ..shared_wrapper import EmbeddingWrapper, PositiveInt, model_name
from .index_nodes import check_nodes, index_entries, node_with_score

VECTOR_KEY = "mrl_vector"


def _positive(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _query_vector(encoder: MRLEncoder, query_bundle: QueryBundle) -> np.ndarray:
    """The full query vector: of ``embedding_strs`` (the query, or e.g. HyDE's texts), averaged as LlamaIndex does."""
    vectors = encoder.encode_queries(list(query_bundle.embedding_strs) or [query_bundle.query_str])
    return full_vectors(vectors.mean(axis=0), encoder.dim, encoder.similarity)[0]


class MRLRetriever(BaseRetriever):
    """Coarse-to-fine retrieval over an :class:`~rag_retrieval_integrations.core.MRLIndex`, as a LlamaIndex retriever.

    The index shortlists ``similarity_top_k * shortlist_factor`` nodes by the first
    ``search_dim`` dims of their vectors (FAISS) and returns the ``similarity_top_k`` best by
    full-vector similarity, as ``NodeWithScore`` with that score. Nodes are embedded on their
    ``MetadataMode.EMBED`` content, as ``VectorStoreIndex`` does, and stored whole (LlamaIndex's
    own ``node_to_metadata_dict``), so they come back with their metadata, exclusions and relationships.

    Args:
        index: the ``MRLIndex`` (with a model: it encodes the queries).
        similarity_top_k: how many nodes to return; default 4.
        shortlist_factor: candidates per result (``None``: the index's own, 50 by default).
        score_threshold: drop nodes scoring below this.
        callback_manager, verbose: LlamaIndex's.

    Example:
        .. code-block:: python

            from llama_index.core.query_engine import RetrieverQueryEngine
            from rag_retrieval_integrations.llama_index import MRLRetriever, RagRetrievalRerank

            retriever = MRLRetriever.from_nodes(nodes, model="./minilm-mrl", similarity_top_k=20)
            engine = RetrieverQueryEngine.from_args(retriever, node_postprocessors=[RagRetrievalRerank(...)], llm=llm)
    """

    def __init__(
        self,
        index: MRLIndex,
        *,
        similarity_top_k: int = 4,
        shortlist_factor: int | None = None,
        score_threshold: float | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(index, MRLIndex):
            raise TypeError(f"index must be an MRLIndex, got {type(index).__name__}")
        if index.encoder is None:
            raise ValueError("index has no model to encode queries with; create or load the MRLIndex with model=")
        self.index = index
        self.encoder = index.encoder
        self.similarity_top_k = _positive(similarity_top_k, "similarity_top_k")
        self.shortlist_factor = None if shortlist_factor is None else _positive(shortlist_factor, "shortlist_factor")
        self.score_threshold = score_threshold
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_nodes(
        cls,
        nodes: Sequence[BaseNode],
        model: ModelLike,
        *,
        similarity_top_k: int = 4,
        score_threshold: float | None = None,
        callback_manager: CallbackManager | None = None,
        **index_options: Any,
    ) -> MRLRetriever:
        """A new ``MRLIndex`` over ``nodes`` (``Document`` objects too); ``index_options`` go to
        ``MRLIndex(model, ...)`` (``search_dim``, ``index_type``, ``shortlist_factor``, ``vector_dtype``, ...)."""
        retriever = cls(
            MRLIndex(model, **index_options),
            similarity_top_k=similarity_top_k,
            score_threshold=score_threshold,
            callback_manager=callback_manager,
        )
        retriever.add_nodes(nodes)
        return retriever

    def add_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Encode and add nodes under their ``node_id`` (one already in the index is replaced); returns the ids."""
        nodes = check_nodes(nodes)
        vectors = self.index.encode_documents([n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes])
        return self.index.add(**index_entries(nodes), embeddings=vectors)

    def delete(self, node_ids: Sequence[str]) -> None:
        """Remove nodes by id (``KeyError`` for an id not in the index)."""
        self.index.delete(node_ids)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.index.search_by_vectors(
            _query_vector(self.encoder, query_bundle)[None, :],
            self.similarity_top_k,
            shortlist_factor=self.shortlist_factor,
            score_threshold=self.score_threshold,
        )[0]
        return [node_with_score(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


class MRLPrefixEmbedding(EmbeddingWrapper, BaseEmbedding):
    """LlamaIndex embedding giving the first ``search_dim`` dims of a model's vectors, re-normalized.

    The ``embed_model`` of a ``VectorStoreIndex`` that serves as the first stage of
    :class:`MRLVectorStoreRetriever`.

    Fields:
        model: an embedding checkpoint folder, hub id, or ``Reranker(path, model_type="embedding")``.
        search_dim: dims kept; default: the smallest Matryoshka dim the checkpoint was trained with.
        model_kwargs, query_prompt, document_prompt, truncate_dim: as for ``RagRetrievalEmbedding``
            (``truncate_dim`` sets what counts as the full vector).
        embed_batch_size: texts per call (LlamaIndex's field, default 10).
    """

    search_dim: PositiveInt | None = Field(
        default=None, description="Dims of the first stage (None: the checkpoint's smallest Matryoshka dim)."
    )

    _encoder: MRLEncoder = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if "model_name" not in data:
            self.model_name = model_name(self.model)
        self._encoder = MRLEncoder(self.embedding_model, search_dim=self.search_dim)
        self.search_dim = self._encoder.search_dim

    @classmethod
    def class_name(cls) -> str:
        return "MRLPrefixEmbedding"

    @property
    def encoder(self) -> MRLEncoder:
        """The model side of the funnel: full vectors and their prefixes."""
        return self._encoder

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encoder.prefix(self._encoder.encode_queries([query]))[0].tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encoder.prefix(self._encoder.encode_documents(texts)).tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


class MRLVectorStoreRetriever(BaseRetriever):
    """Coarse-to-fine retrieval with a ``VectorStoreIndex`` (any LlamaIndex vector store) as the first stage.

    The index's vector store holds each node's ``search_dim``-dim prefix, and the node carries its
    full vector in ``metadata[vector_key]`` (a string, left out of the embed and LLM text). A query
    is encoded once: the store returns the ``similarity_top_k * shortlist_factor`` nearest by
    prefix, and those are re-scored with the full vectors. Results are ``NodeWithScore`` objects,
    best first, holding copies of the nodes without the full vector. The first stage scales as the
    vector store does (``StorageContext.from_defaults(vector_store=...)`` of a distributed database).

    Add nodes through :meth:`add_nodes` (or :meth:`from_nodes`): it encodes each node once and
    stores both vectors.

    Args:
        index: the ``VectorStoreIndex`` of the first stage.
        embed_model: its :class:`MRLPrefixEmbedding` (default: the index's embed model, when it is one).
        similarity_top_k: how many nodes to return; default 4.
        shortlist_factor: candidates fetched from the store per result; default 50 (each one a network payload
            on a remote store: lower it there if recall allows).
        score_threshold: drop nodes scoring below this.
        vector_key: the metadata key holding the full vector; default ``"mrl_vector"``.
        vector_dtype: ``"float16"`` (default) or ``"float32"`` for the stored full vectors.
        callback_manager, verbose: LlamaIndex's.

    Example:
        .. code-block:: python

            from rag_retrieval_integrations.llama_index import MRLVectorStoreRetriever

            retriever = MRLVectorStoreRetriever.from_nodes(nodes, model="./minilm-mrl", similarity_top_k=4)
            # a remote store: from_nodes(..., storage_context=StorageContext.from_defaults(vector_store=store))
            retriever.retrieve("what is a panda?")
    """

    def __init__(
        self,
        index: VectorStoreIndex,
        embed_model: MRLPrefixEmbedding | None = None,
        *,
        similarity_top_k: int = 4,
        shortlist_factor: int = DEFAULT_SHORTLIST_FACTOR,
        score_threshold: float | None = None,
        vector_key: str = VECTOR_KEY,
        vector_dtype: VectorDtype = "float16",
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(index, VectorStoreIndex):
            raise TypeError(f"index must be a llama_index VectorStoreIndex, got {type(index).__name__}")
        own = index._embed_model  # no public accessor; LlamaIndex's own as_retriever reads the same attribute
        if embed_model is None:
            if not isinstance(own, MRLPrefixEmbedding):
                raise ValueError(
                    "MRLVectorStoreRetriever needs the MRLPrefixEmbedding of its first stage: build the index with "
                    f"embed_model=MRLPrefixEmbedding(...), or pass embed_model= (the index has {type(own).__name__})"
                )
            embed_model = own
        elif not isinstance(embed_model, MRLPrefixEmbedding):
            raise TypeError(f"embed_model must be an MRLPrefixEmbedding, got {type(embed_model).__name__}")
        elif isinstance(own, MRLPrefixEmbedding) and own.search_dim != embed_model.search_dim:
            raise ValueError(
                f"the index's embed model keeps {own.search_dim} dims but embed_model= keeps "
                f"{embed_model.search_dim}; use the same MRLPrefixEmbedding for both"
            )
        self.index = index
        self.embed_model = embed_model
        self.similarity_top_k = _positive(similarity_top_k, "similarity_top_k")
        self.shortlist_factor = _positive(shortlist_factor, "shortlist_factor")
        self.score_threshold = score_threshold
        self.vector_key = vector_key
        self.vector_dtype: VectorDtype = vector_dtype
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def encoder(self) -> MRLEncoder:
        return self.embed_model.encoder

    @classmethod
    def from_nodes(
        cls,
        nodes: Sequence[BaseNode],
        model: ModelLike,
        *,
        search_dim: int | None = None,
        storage_context: StorageContext | None = None,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> MRLVectorStoreRetriever:
        """A new ``VectorStoreIndex`` (on ``storage_context``'s vector store; default in memory) over
        ``nodes``; ``kwargs`` are the retriever's options."""
        embed_model = MRLPrefixEmbedding(model=model, search_dim=search_dim, model_kwargs=dict(model_kwargs or {}))
        index = VectorStoreIndex(nodes=[], embed_model=embed_model, storage_context=storage_context)
        retriever = cls(index, embed_model, **kwargs)
        retriever.add_nodes(nodes)
        return retriever

    def add_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Encode ``nodes`` once and insert copies into the index: prefix as the embedding, full vector in
        the metadata. Returns their ids."""
        nodes = check_nodes(nodes)
        if not nodes:
            return []
        full = self.encoder.encode_documents([n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes])
        prefixes = self.encoder.prefix(full)
        copies = [
            node.model_copy(
                update={
                    "embedding": prefix.tolist(),
                    "metadata": {**node.metadata, self.vector_key: vector_to_text(vector, self.vector_dtype)},
                    "excluded_embed_metadata_keys": _with(node.excluded_embed_metadata_keys, self.vector_key),
                    "excluded_llm_metadata_keys": _with(node.excluded_llm_metadata_keys, self.vector_key),
                }
            )
            for node, vector, prefix in zip(nodes, full, prefixes)
        ]
        self.index.insert_nodes(copies)
        return [n.node_id for n in copies]

    def _shortlist_retriever(self) -> BaseRetriever:
        return self.index.as_retriever(similarity_top_k=self.similarity_top_k * self.shortlist_factor)

    def _first_stage_query(self, query_bundle: QueryBundle) -> tuple[np.ndarray, QueryBundle]:
        full = _query_vector(self.encoder, query_bundle)
        prefix = self.encoder.prefix(full[None, :])[0].tolist()
        return full, QueryBundle(query_str=query_bundle.query_str, embedding=prefix)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        full, first_stage = self._first_stage_query(query_bundle)
        return self._rescore(full, self._shortlist_retriever().retrieve(first_stage))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        full, first_stage = await asyncio.to_thread(self._first_stage_query, query_bundle)
        return self._rescore(full, await self._shortlist_retriever().aretrieve(first_stage))

    def _rescore(self, query: np.ndarray, shortlist: list[NodeWithScore]) -> list[NodeWithScore]:
        best = rescore_stored(
            query,
            [n.node.metadata for n in shortlist],
            [f"node {n.node.node_id!r}" for n in shortlist],
            self.similarity_top_k,
            vector_key=self.vector_key,
            dim=self.encoder.dim,
            score_threshold=self.score_threshold,
            how_to_add="add nodes through MRLVectorStoreRetriever.add_nodes (or from_nodes)",
        )
        return [NodeWithScore(node=self._without_vector(shortlist[i].node), score=score) for i, score in best]

    def _without_vector(self, node: BaseNode) -> BaseNode:
        key = self.vector_key
        return node.model_copy(
            update={
                "metadata": {k: v for k, v in node.metadata.items() if k != key},
                "excluded_embed_metadata_keys": [k for k in node.excluded_embed_metadata_keys if k != key],
                "excluded_llm_metadata_keys": [k for k in node.excluded_llm_metadata_keys if k != key],
                "embedding": None,
            }
        )


def _with(keys: list[str], key: str) -> list[str]:
    return keys if key in keys else [*keys, key]
