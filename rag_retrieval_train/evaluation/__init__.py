"""Evaluation: IR metrics (through ``ir_measures``), reranking sets, ``rag-retrieval-eval``."""

from .metrics import RERANK_METRICS, evaluate_run
from .rerank_data import RerankSet, load_rerank_set
from .rerank_eval import evaluate_reranker

__all__ = ["RERANK_METRICS", "RerankSet", "evaluate_reranker", "evaluate_run", "load_rerank_set"]
