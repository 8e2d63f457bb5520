"""LlamaIndex integration: a node postprocessor (``RagRetrievalRerank``), an embedding model
(``RagRetrievalEmbedding``), ColBERT, MRL, BM25 and hybrid retrievers (``ColBERTRetriever``,
``MRLRetriever``, ``BM25Retriever``, ``HybridRetriever``) and an
MRL first stage over any vector store (``MRLPrefixEmbedding``, ``MRLVectorStoreRetriever``).

Imports ``llama_index.core`` only; install it with ``pip install 'rag-retrieval[llama-index]'``.
"""

try:
    import llama_index.core  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rag_retrieval_integrations.llama_index needs llama-index-core: pip install 'rag-retrieval[llama-index]'"
    ) from err

from .colbert_retriever import ColBERTRetriever
from .embeddings import RagRetrievalEmbedding
from .hybrid_retriever import BM25Retriever, HybridRetriever
from .mrl_retriever import MRLPrefixEmbedding, MRLRetriever, MRLVectorStoreRetriever
from .postprocessor import RagRetrievalRerank

__all__ = [
    "BM25Retriever",
    "HybridRetriever",
    "ColBERTRetriever",
    "MRLPrefixEmbedding",
    "MRLRetriever",
    "MRLVectorStoreRetriever",
    "RagRetrievalEmbedding",
    "RagRetrievalRerank",
]
