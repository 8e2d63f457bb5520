"""``RagRetrievalEmbeddings``: a rag-retrieval embedding model as LangChain ``Embeddings``."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from pydantic import Field

from ..adapter_fields import EmbeddingWrapper, PositiveInt
from ..core.text.inputs import check_query


class RagRetrievalEmbeddings(EmbeddingWrapper, Embeddings):
    """Embeds queries and documents with a sentence-transformers model, as rag-retrieval ranks with it.

    The vectors equal sentence-transformers' ``encode_query``/``encode_document`` on the same
    checkpoint, with the same prompts and ``truncate_dim``.

    Fields:
        model: a checkpoint folder, a hub id, or a model loaded with
            ``Reranker(path, model_type="embedding")`` (pass a loaded model to share it).
        model_kwargs: options for ``Reranker(...)`` when loading from a path (``device``, ``dtype``, ...).
        query_prompt, document_prompt: instructions put before queries and documents; by default
            the checkpoint's own ``"query"``/``"document"`` prompts, if it has them.
        truncate_dim: keep the first ``truncate_dim`` dimensions (Matryoshka models).
        batch_size: texts per forward pass (``None``: the model's own).

    Example:
        .. code-block:: python

            from langchain_core.vectorstores import InMemoryVectorStore
            from rag_retrieval_integrations.langchain import RagRetrievalEmbeddings

            embeddings = RagRetrievalEmbeddings(
                model="BAAI/bge-small-en-v1.5",
                query_prompt="Represent this sentence for searching relevant passages: ",
                truncate_dim=256,
            )
            store = InMemoryVectorStore.from_texts(texts, embeddings)
    """

    batch_size: PositiveInt | None = Field(default=None, description="Texts per forward pass (None: the model's).")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents, with the document prompt."""
        return self._embed(texts, False, self.batch_size)

    def embed_query(self, text: str) -> list[float]:
        """Embed one query, with the query prompt."""
        return self._embed([check_query(text, "text")], True, self.batch_size)[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread."""
        return await self._aembed(texts, False, self.batch_size)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread."""
        return (await self._aembed([check_query(text, "text")], True, self.batch_size))[0]
