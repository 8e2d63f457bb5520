"""Evaluation: IR metrics (through ``ir_measures``), reranking and retrieval sets, ``rag-retrieval-eval``."""

from .metrics import PIPELINE_METRICS, RERANK_METRICS, RETRIEVAL_METRICS, evaluate_run
from .pipeline_eval import evaluate_pipeline, read_run_file
from .rerank_data import RerankSet, load_rerank_set
from .rerank_eval import evaluate_reranker
from .retrieval_data import RetrievalSet, load_retrieval_set
from .retrieval_eval import RETRIEVERS, evaluate_retriever

__all__ = [
    "PIPELINE_METRICS",
    "RERANK_METRICS",
    "RETRIEVAL_METRICS",
    "RETRIEVERS",
    "RerankSet",
    "RetrievalSet",
    "evaluate_pipeline",
    "evaluate_reranker",
    "evaluate_retriever",
    "evaluate_run",
    "load_rerank_set",
    "load_retrieval_set",
    "read_run_file",
]
