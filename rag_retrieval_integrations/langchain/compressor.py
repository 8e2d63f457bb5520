"""``RagRetrievalReranker``: any rag-retrieval ranking model as a LangChain document compressor."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document

from ..adapter_fields import RerankerWrapper
from ..core.results import RankResult
from .index_documents import check_documents


class RagRetrievalReranker(RerankerWrapper, BaseDocumentCompressor):
    """Reranks retrieved documents with a rag-retrieval model: cross-encoder, LLM reranker or embedding.

    Each returned document is a new ``Document`` (same ``id``, ``page_content`` and metadata,
    the metadata dict copied) with the model's score in ``metadata["relevance_score"]``, best
    first; the caller's documents are left unchanged. Ties keep the retriever's order.

    Fields:
        model: a checkpoint folder, a Hugging Face hub id, or a model loaded with ``Reranker(...)``
            (pass a loaded model to share it between wrappers).
        model_type: the model family when loading from a path (``None``: detected from the checkpoint).
        model_kwargs: options for ``Reranker(...)`` when loading from a path (``device``, ``dtype``,
            ``max_length``, ``long_doc``, ...).
        top_n: how many documents to return, best first (``None``: all of them); default 3.
        score_threshold: drop documents scoring below this, compared with the score as reported
            (after the sigmoid when ``normalize``).
        normalize: report ``sigmoid(raw score)``, in (0, 1), instead of the raw score.
        batch_size: model inputs per forward pass (``None``: the model's own).

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from rag_retrieval_integrations.langchain import RagRetrievalReranker

            reranker = RagRetrievalReranker(model="BAAI/bge-reranker-base", top_n=3)
            retriever = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=base_retriever)
            docs = retriever.invoke("what is a panda?")
    """

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Score every document against ``query`` and return the best ``top_n``, best first.

        Args:
            documents: the retrieved documents; each is scored on its ``page_content``.
            query: the query to score them against.
            callbacks: accepted for the ``BaseDocumentCompressor`` interface; the model emits no events.
        """
        return _with_scores(documents, self._rank(query, _texts(documents)))

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """:meth:`compress_documents` with the model run in a worker thread, off the event loop."""
        return _with_scores(documents, await self._arank(query, _texts(documents)))


def _texts(documents: Sequence[Document]) -> list[str]:
    return [doc.page_content for doc in check_documents(documents)]


def _with_scores(documents: Sequence[Document], results: list[RankResult]) -> list[Document]:
    """Copies of the ranked documents, best first, with ``metadata["relevance_score"]``."""
    return [
        documents[r.index].model_copy(update={"metadata": {**documents[r.index].metadata, "relevance_score": r.score}})
        for r in results
    ]
