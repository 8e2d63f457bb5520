"""``RagRetrievalEmbedding``: a rag-retrieval embedding model as a LlamaIndex ``BaseEmbedding``."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding

from ..adapter_fields import EmbeddingWrapper, model_name


class RagRetrievalEmbedding(EmbeddingWrapper, BaseEmbedding):
    """Embeds queries and texts with a sentence-transformers model, as rag-retrieval ranks with it.

    The vectors equal sentence-transformers' ``encode_query``/``encode_document`` on the same
    checkpoint, with the same prompts and ``truncate_dim``; nodes are embedded as documents.

    Fields:
        model: a checkpoint folder, a hub id, or a model loaded with
            ``Reranker(path, model_type="embedding")`` (pass a loaded model to share it).
        model_kwargs: options for ``Reranker(...)`` when loading from a path (``device``, ``dtype``, ...).
        query_prompt, document_prompt: instructions put before queries and texts; by default the
            checkpoint's own ``"query"``/``"document"`` prompts, if it has them.
        truncate_dim: keep the first ``truncate_dim`` dimensions (Matryoshka models).
        embed_batch_size: texts per call and per forward pass (LlamaIndex's field, default 10).

    Example:
        .. code-block:: python

            from llama_index.core import VectorStoreIndex
            from rag_retrieval_integrations.llama_index import RagRetrievalEmbedding

            embed_model = RagRetrievalEmbedding(model="BAAI/bge-small-en-v1.5", truncate_dim=256)
            index = VectorStoreIndex(nodes, embed_model=embed_model)
    """

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if "model_name" not in data:
            self.model_name = model_name(self.model)

    @classmethod
    def class_name(cls) -> str:
        return "RagRetrievalEmbedding"

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query], True, self.embed_batch_size)[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text], False, self.embed_batch_size)[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts, False, self.embed_batch_size)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aembed([query], True, self.embed_batch_size))[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aembed([text], False, self.embed_batch_size))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed(texts, False, self.embed_batch_size)
