"""LangChain integration: a document compressor (``RagRetrievalReranker``), embeddings
(``RagRetrievalEmbeddings``), ColBERT, MRL, BM25 and hybrid retrievers (``ColBERTRetriever``,
``MRLRetriever``, ``BM25Retriever``, ``HybridRetriever``) and
an MRL first stage over any vector store (``MRLPrefixEmbeddings``, ``MRLVectorStoreRetriever``).

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

from .colbert_retriever import ColBERTRetriever
from .compressor import RagRetrievalReranker
from .embeddings import RagRetrievalEmbeddings
from .hybrid_retriever import BM25Retriever, HybridRetriever
from .mrl_retriever import MRLPrefixEmbeddings, MRLRetriever, MRLVectorStoreRetriever

__all__ = [
    "BM25Retriever",
    "HybridRetriever",
    "ColBERTRetriever",
    "MRLPrefixEmbeddings",
    "MRLRetriever",
    "MRLVectorStoreRetriever",
    "RagRetrievalEmbeddings",
    "RagRetrievalReranker",
]
