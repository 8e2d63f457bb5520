"""rag-retrieval training: the embedding, reranker, distillation and ColBERT trainers on the shared core layer.

One CLI (``rag-retrieval-train {embedding,reranker,distill,colbert}``) on one ``TrainingRun``;
every trainer writes checkpoints that ``rag_retrieval_integrations.Reranker`` and
sentence-transformers load directly. ``rag-retrieval-eval`` (``rag_retrieval_integrations.evaluation``)
measures them.
"""

__version__ = "0.1.0"
