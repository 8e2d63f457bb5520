"""Fusing ranked lists: reciprocal rank fusion and weighted sums of normalized scores.

Each input is one retriever's ranking for a query: ``(id, score)`` pairs, best first. The fused
ranking holds every id found in any list, best first; ties keep the order of first appearance
(the first list's ranking first). With weights :math:`w_i` and :math:`L_i` the lists holding ``d``:

- ``"rrf"`` (Cormack et al., 2009): :math:`s(d) = \\sum_{i \\in L_i} w_i / (k + r_i(d))`, with
  :math:`r_i(d)` the 1-based rank of ``d`` in list ``i`` and ``k`` = ``rrf_k`` (60 by default).
  Scores are ignored: only ranks fuse, so lists on any scale mix safely.
- ``"minmax"``: :math:`s(d) = \\sum_i w_i (x_i(d) - \\min_i) / (\\max_i - \\min_i)`, the min and max of
  list ``i``'s scores; a list whose scores are all equal gives its documents 1; a document
  absent from a list gets 0 from it (the bottom of that list).
- ``"zscore"``: :math:`s(d) = \\sum_i w_i (x_i(d) - \\mu_i) / \\sigma_i`; a document absent from a list
  gets that list's lowest z-score (as if ranked last); a list of equal scores gives 0.

Normalizing over the retrieved lists (not the whole corpus) is what every fusing engine does
(Weaviate's relative-score fusion, Elasticsearch's linear retriever with min-max): the depth of
the lists (``candidates``) therefore matters to the normalized fusions, less to RRF.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Fusion = Literal["rrf", "minmax", "zscore"]
FUSIONS: tuple[str, ...] = ("rrf", "minmax", "zscore")
DEFAULT_RRF_K = 60
Ranking = Sequence[tuple[str, float]]


def check_fusion(fusion: str) -> str:
    """``fusion`` if it is one of :data:`FUSIONS`, else a ``ValueError`` listing them."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {fusion!r}")
    return fusion


def _normalized(scores: np.ndarray, fusion: str) -> tuple[np.ndarray, float]:
    """The normalized scores of one list and the value a document missing from it gets."""
    if fusion == "minmax":
        low, high = scores.min(), scores.max()
        if high == low:
            return np.ones_like(scores), 0.0
        return (scores - low) / (high - low), 0.0
    std = scores.std()
    if std == 0:
        return np.zeros_like(scores), 0.0
    z = (scores - scores.mean()) / std
    return z, float(z.min())


def fuse(
    rankings: Sequence[Ranking],
    *,
    fusion: str = "rrf",
    weights: Sequence[float] | None = None,
    rrf_k: float = DEFAULT_RRF_K,
) -> list[tuple[str, float]]:
    """One fused ranking ``[(id, fused score), ...]``, best first, of ``rankings`` (see the module docstring).

    Args:
        rankings: one list per retriever, each ``(id, score)`` best first, ids unique within a list.
        fusion: ``"rrf"``, ``"minmax"`` or ``"zscore"``.
        weights: one per list (default: 1 each).
        rrf_k: RRF's rank offset; larger flattens the gap between top ranks.
    """
    check_fusion(fusion)
    weights = [1.0] * len(rankings) if weights is None else [float(w) for w in weights]
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings; give one weight per ranking")
    fused: dict[str, float] = {}  # insertion order = first appearance, the tie-break
    normalized: list[tuple[dict[str, float], float]] = []
    for ranking in rankings:
        ids = [doc_id for doc_id, _ in ranking]
        for doc_id in ids:
            fused.setdefault(doc_id, 0.0)
        if fusion == "rrf":
            normalized.append(({doc_id: 1.0 / (rrf_k + rank) for rank, doc_id in enumerate(ids, start=1)}, 0.0))
        elif ids:
            values, missing = _normalized(np.array([s for _, s in ranking], dtype=np.float64), fusion)
            normalized.append((dict(zip(ids, values.tolist())), missing))
        else:
            normalized.append(({}, 0.0))
    for weight, (values, missing) in zip(weights, normalized):
        for doc_id in fused:
            fused[doc_id] += weight * values.get(doc_id, missing)
    items = list(fused.items())
    ranked = sorted(range(len(items)), key=lambda i: -items[i][1])  # stable: ties keep first appearance
    return [items[i] for i in ranked]
