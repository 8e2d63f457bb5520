"""Matryoshka (MRL) coarse-to-fine retrieval for LlamaIndex: over an ``MRLIndex``, or over any vector store.

``MRLRetriever`` searches our FAISS-backed :class:`~rag_retrieval_integrations.core.MRLIndex`.
``MRLVectorStoreRetriever`` puts the first stage in a ``VectorStoreIndex`` (so in any LlamaIndex
vector store: in-memory, FAISS, or a distributed vector database) holding the ``search_dim``-dim
prefixes, each node carrying its full vector in its metadata, and re-scores the shortlist with
the full vectors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.storage.storage_context import StorageContext

from ..adapter_fields import EmbeddingWrapper, PositiveInt, model_name
from ..core.engines.qdrant.mrl import QdrantMRLIndex
from ..core.indexes.base import Index
from ..core.indexes.documents import IndexHit
from ..core.indexes.funnel import VECTOR_KEY, VectorStoreFunnel, first_stage_embeddings
from ..core.indexes.mrl import MRLIndex
from ..core.indexes.mrl_encoder import ModelLike, MRLEncoder
from ..core.indexes.mrl_vectors import DEFAULT_SHORTLIST_FACTOR, VectorDtype
from ..core.options import check_positive_int, check_score_threshold
from .index_nodes import check_nodes, embed_texts, hiding
from .index_retriever import IndexRetriever


def _query_texts(query_bundle: QueryBundle) -> list[str]:
    """What a query is embedded from: ``embedding_strs`` (the query, or e.g. HyDE's texts; averaged), as LlamaIndex does."""
    return list(query_bundle.embedding_strs) or [query_bundle.query_str]


class MRLRetriever(IndexRetriever):
    """Coarse-to-fine retrieval over an :class:`~rag_retrieval_integrations.core.MRLIndex`, as a LlamaIndex retriever.

    The index shortlists ``max(similarity_top_k * shortlist_factor, shortlist_size)`` nodes by the
    first ``search_dim`` dims of their vectors (FAISS) and returns the ``similarity_top_k`` best by
    full-vector similarity, as ``NodeWithScore`` with that score. Nodes are embedded on their
    ``MetadataMode.EMBED`` content, as ``VectorStoreIndex`` does, and stored whole (LlamaIndex's
    own ``node_to_metadata_dict``), so they come back with their metadata, exclusions and relationships.

    Args:
        index: the ``MRLIndex`` (with a model: it encodes the queries).
        similarity_top_k: how many nodes to return; default 4.
        shortlist_factor: candidates per result (``None``: the index's own, 50 by default).
        shortlist_size: the fewest candidates (``None``: the index's own).
        score_threshold: drop nodes scoring below this.
        callback_manager, verbose: LlamaIndex's.

    Example:
        .. code-block:: python

            from llama_index.core.query_engine import RetrieverQueryEngine
            from rag_retrieval_integrations.llama_index import MRLRetriever, RagRetrievalRerank

            # MRLIndex settings (search_dim, index_type, shortlist_factor, vector_dtype...) go to the index
            retriever = MRLRetriever.from_nodes(nodes, model="./minilm-mrl", similarity_top_k=20)
            engine = RetrieverQueryEngine.from_args(retriever, node_postprocessors=[RagRetrievalRerank(...)], llm=llm)
    """

    index_class: ClassVar[type[Index]] = MRLIndex
    engines: ClassVar[Mapping[str, type[Index]]] = {"faiss": MRLIndex, "qdrant": QdrantMRLIndex}
    index: MRLIndex | QdrantMRLIndex

    def __init__(
        self,
        index: MRLIndex | QdrantMRLIndex,
        *,
        shortlist_factor: int | None = None,
        shortlist_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(index, (MRLIndex, QdrantMRLIndex)):
            index.check_encodes_queries()
        self.shortlist_factor = (
            None if shortlist_factor is None else check_positive_int(shortlist_factor, "shortlist_factor")
        )
        self.shortlist_size = None if shortlist_size is None else check_positive_int(shortlist_size, "shortlist_size")
        super().__init__(index, **kwargs)

    def _search_options(self) -> dict[str, Any]:
        return {"shortlist_factor": self.shortlist_factor, "shortlist_size": self.shortlist_size}

    def _search(self, query_bundle: QueryBundle) -> list[IndexHit]:
        assert self.index.encoder is not None
        query = self.index.encoder.encode_query(_query_texts(query_bundle))
        return self.index.search_by_vectors(
            query[None, :], self.similarity_top_k, score_threshold=self.score_threshold, **self._search_options()
        )[0]


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
        batch_size: texts per forward pass (``None``: the model's own).
    """

    search_dim: PositiveInt | None = Field(
        default=None, description="Dims of the first stage (None: the checkpoint's smallest Matryoshka dim)."
    )
    batch_size: PositiveInt | None = Field(default=None, description="Texts per forward pass (None: the model's).")

    _encoder: MRLEncoder = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if "model_name" not in data:
            self.model_name = model_name(self.model)
        self._encoder = MRLEncoder(self.embedding_model, search_dim=self.search_dim, batch_size=self.batch_size)
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
    is encoded once: the store returns the ``max(similarity_top_k * shortlist_factor, shortlist_size)``
    nearest by prefix (the shortlist ``MRLIndex`` takes), and those are re-scored with the full vectors
    (:class:`~rag_retrieval_integrations.core.indexes.funnel.VectorStoreFunnel`). Results are
    ``NodeWithScore`` objects, best first, holding copies of the nodes without the full vector. The
    first stage scales as the vector store does (``StorageContext.from_defaults(vector_store=...)``
    of a distributed database).

    Add nodes through :meth:`add_nodes` (or :meth:`from_nodes`): it encodes each node once and
    stores both vectors.

    Args:
        index: the ``VectorStoreIndex`` of the first stage.
        embed_model: its :class:`MRLPrefixEmbedding` (default: the index's embed model, when it is one).
        similarity_top_k: how many nodes to return; default 4.
        shortlist_factor: candidates fetched from the store per result; default 50 (each one a network payload
            on a remote store: lower it there if recall allows).
        shortlist_size: the fewest candidates fetched, whatever ``similarity_top_k`` (``None``: none).
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
        shortlist_size: int | None = None,
        score_threshold: float | None = None,
        vector_key: str = VECTOR_KEY,
        vector_dtype: VectorDtype = "float16",
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(index, VectorStoreIndex):
            raise TypeError(f"index must be a llama_index VectorStoreIndex, got {type(index).__name__}")
        if embed_model is not None and not isinstance(embed_model, MRLPrefixEmbedding):
            raise TypeError(f"embed_model must be an MRLPrefixEmbedding, got {type(embed_model).__name__}")
        own = index._embed_model  # no public accessor; LlamaIndex's own as_retriever reads the same attribute
        self.embed_model = first_stage_embeddings(
            embed_model, own, MRLPrefixEmbedding, "the index", "embed_model", "embed_model"
        )
        self.index = index
        self.similarity_top_k = check_positive_int(similarity_top_k, "similarity_top_k")
        self.funnel = VectorStoreFunnel(
            self.embed_model.encoder,
            shortlist_factor=shortlist_factor,
            shortlist_size=shortlist_size,
            vector_key=vector_key,
            vector_dtype=vector_dtype,
        )
        self.score_threshold = check_score_threshold(score_threshold)
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
        key = self.funnel.vector_key
        metadatas, prefixes = self.funnel.encode_documents(embed_texts(nodes), [n.metadata for n in nodes])
        copies = [
            node.model_copy(
                update={
                    "embedding": prefix,
                    "metadata": metadata,
                    **hiding(node, key),
                }
            )
            for node, metadata, prefix in zip(nodes, metadatas, prefixes)
        ]
        self.index.insert_nodes(copies)
        return [n.node_id for n in copies]

    def _shortlist_retriever(self) -> BaseRetriever:
        return self.index.as_retriever(similarity_top_k=self.funnel.shortlist_width(self.similarity_top_k))

    def _first_stage_query(self, query_bundle: QueryBundle) -> tuple[np.ndarray, QueryBundle]:
        full, prefix = self.funnel.encode_query(_query_texts(query_bundle))
        return full, QueryBundle(query_str=query_bundle.query_str, embedding=prefix)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        full, first_stage = self._first_stage_query(query_bundle)
        return self._rescore(full, self._shortlist_retriever().retrieve(first_stage))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        full, first_stage = await asyncio.to_thread(self._first_stage_query, query_bundle)
        return self._rescore(full, await self._shortlist_retriever().aretrieve(first_stage))

    def _rescore(self, query: np.ndarray, shortlist: list[NodeWithScore]) -> list[NodeWithScore]:
        best = self.funnel.rescore(
            query,
            [n.node.metadata for n in shortlist],
            [f"node {n.node.node_id!r}" for n in shortlist],
            self.similarity_top_k,
            self.score_threshold,
            "add nodes through MRLVectorStoreRetriever.add_nodes (or from_nodes)",
        )
        return [NodeWithScore(node=self._without_vector(shortlist[i].node), score=score) for i, score in best]

    def _without_vector(self, node: BaseNode) -> BaseNode:
        key = self.funnel.vector_key
        return node.model_copy(
            update={
                "metadata": self.funnel.without_vector(node.metadata),
                "excluded_embed_metadata_keys": [k for k in node.excluded_embed_metadata_keys if k != key],
                "excluded_llm_metadata_keys": [k for k in node.excluded_llm_metadata_keys if k != key],
                "embedding": None,
            }
        )
