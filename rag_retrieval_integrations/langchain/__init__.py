"""LangChain integration: a document compressor (reranker) and embeddings.

Imports ``langchain_core`` only; install it with ``pip install 'rag-retrieval[langchain]'``.
``ContextualCompressionRetriever`` lives in ``langchain-classic`` (``langchain_classic.retrievers``)
since LangChain 1.0.
"""

try:
    import langchain_core  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rag_retrieval_integrations.langchain needs langchain-core: pip install 'rag-retrieval[langchain]'"
    ) from err

from .compressor import RagRetrievalReranker
from .embeddings import RagRetrievalEmbeddings

__all__ = ["RagRetrievalEmbeddings", "RagRetrievalReranker"]
