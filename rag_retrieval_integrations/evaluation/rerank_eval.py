"""Scoring a reranking set with any ``Reranker`` and measuring MAP, MRR@10 and nDCG@10."""

from __future__ import annotations

from typing import Any

from .metrics import RERANK_METRICS, evaluate_run
from .rerank_data import RerankSet


def evaluate_reranker(
    ranker: Any, data: RerankSet, metrics: tuple[str, ...] = RERANK_METRICS, batch_size: int | None = None
) -> dict[str, float]:
    """Rank every query's candidates with ``ranker`` (one batched ``rank_many`` pass) and score
    the ranking over the queries with at least one relevant candidate."""
    keep = [i for i, labels in enumerate(data.labels) if any(label > 0 for label in labels)]
    if not keep:
        raise ValueError(f"{data.source}: no query has a relevant candidate (label > 0); nothing to evaluate")
    results = ranker.rank_many(
        [data.queries[i] for i in keep], [data.candidates[i] for i in keep], batch_size=batch_size
    )
    run = {str(i): {str(r.index): float(r.score) for r in ranked} for i, ranked in zip(keep, results)}
    qrels = {str(i): {str(j): label for j, label in enumerate(data.labels[i])} for i in keep}
    scores = evaluate_run(run, qrels, metrics)
    scores["queries_without_relevant"] = len(data) - len(keep)
    return scores
