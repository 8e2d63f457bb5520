"""Evaluation: IR metrics (through ``ir_measures``), reranking and retrieval sets, ``rag-retrieval-eval``."""

from .metrics import RERANK_METRICS, RETRIEVAL_METRICS, evaluate_run
from .rerank_data import RerankSet, load_rerank_set
from .rerank_eval import evaluate_reranker
from .retrieval_data import RetrievalSet, load_retrieval_set
from .retrieval_eval import RETRIEVERS, evaluate_retriever

__all__ = [
    "RERANK_METRICS",
    "RETRIEVAL_METRICS",
    "RETRIEVERS",
    "RerankSet",
    "RetrievalSet",
    "evaluate_reranker",
    "evaluate_retriever",
    "evaluate_run",
    "load_rerank_set",
    "load_retrieval_set",
]
