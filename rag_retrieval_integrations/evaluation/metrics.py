"""IR metrics through ``ir_measures`` (the TREC ``trec_eval`` implementation via pytrec_eval).

Runs and qrels are plain dicts: ``run[query_id][doc_id] = score`` and
``qrels[query_id][doc_id] = relevance`` (int >= 0). Queries without a relevant document are
left out before scoring, as the reranking protocols (WikiQA: MAP and MRR over questions with a
correct answer) and BEIR do; how many were left out is returned with the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

RERANK_METRICS = ("MAP", "MRR@10", "nDCG@10")
RETRIEVAL_METRICS = ("nDCG@10", "MRR@10", "R@10", "R@100")
PIPELINE_METRICS = ("nDCG@10", "MRR@10", "R@10")


def _measure(name: str) -> Any:
    import ir_measures

    names = {"MAP": "AP", "MRR": "RR"}
    base, _, cutoff = name.partition("@")
    try:
        return ir_measures.parse_measure(names.get(base, base) + (f"@{cutoff}" if cutoff else ""))
    except (NameError, ValueError, SyntaxError):
        raise ValueError(f"unknown metric {name!r}; use e.g. MAP, MRR@10, nDCG@10, R@100, P@5") from None


def deepest_cutoff(metrics: Sequence[str]) -> int | None:
    """The largest rank cutoff among ``metrics`` (``100`` for ``R@100``), ``None`` if none has one.

    A run must be at least that deep for the metrics to mean what their names say.
    """
    cutoffs = [_measure(name).params.get("cutoff") for name in metrics]
    return max((c for c in cutoffs if c is not None), default=None)


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str] = RERANK_METRICS,
) -> dict[str, float]:
    """Mean of each metric over the queries of ``qrels`` that have a relevant document.

    ``metrics`` take the names users read in papers: ``MAP``, ``MRR@10``, ``nDCG@10``,
    ``R@100`` (recall), ``P@5``. A query of ``qrels`` missing from ``run`` scores 0.
    Returns the metrics plus ``"queries"`` (how many were scored).
    """
    import ir_measures

    judged = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items() if any(r > 0 for r in docs.values())}
    if not judged:
        raise ValueError("no query has a relevant document (a label > 0): nothing to evaluate")
    full_run = {q: {d: float(s) for d, s in run.get(q, {}).items()} for q in judged}
    measures = {name: _measure(name) for name in metrics}
    # ir_measures drops queries with an empty run; they count as 0 here, as trec_eval -c would.
    per_query: dict[str, dict[str, float]] = {name: {} for name in metrics}
    for metric in ir_measures.iter_calc(list(measures.values()), judged, {q: r for q, r in full_run.items() if r}):
        for name, measure in measures.items():
            if metric.measure == measure:
                per_query[name][metric.query_id] = float(metric.value)
    out = {name: sum(values.get(q, 0.0) for q in judged) / len(judged) for name, values in per_query.items()}
    out["queries"] = len(judged)
    return out
