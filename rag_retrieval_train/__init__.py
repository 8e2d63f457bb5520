"""rag-retrieval training: trainers for embedding, reranker and ColBERT models on the shared core layer.

The trainers land here one issue at a time; every one of them writes checkpoints that
``rag_retrieval_integrations.Reranker`` and sentence-transformers load directly.
"""

__version__ = "0.1.0"
