"""The ColBERT index's search math, apart from its storage: stage 1's MaxSim estimate over the
token hits FAISS returns, and the best ``k`` of scored documents."""

from __future__ import annotations

import numpy as np


def candidate_slots(sims: np.ndarray, rows: np.ndarray, token_slot: np.ndarray, max_candidates: int) -> np.ndarray:
    """The ``max_candidates`` document slots with the highest estimated MaxSim, best first.

    Args:
        sims, rows: FAISS's answer for one query, ``(query tokens, token_k)``: similarities and token
            rows (``-1`` where fewer were found).
        token_slot: the document slot of every stored token row.
        max_candidates: how many slots go on to exact MaxSim.

    A document's estimate is the sum over query tokens of the best similarity found among its
    tokens; a query token that found none of its tokens counts its worst similarity found: a
    token it did not find is at most that similar (exactly so for a search of every token, about
    so for IVF). Empty when FAISS found nothing.
    """
    found = rows >= 0
    if not found.any():
        return np.zeros(0, dtype=np.int64)
    slots, which = np.unique(token_slot[rows[found]], return_inverse=True)
    floor = np.where(found.any(axis=1), np.where(found, sims, np.inf).min(axis=1), 0.0)
    estimate = np.repeat(floor[:, None], len(slots), axis=1)
    np.maximum.at(estimate, (np.nonzero(found)[0], which), sims[found])
    return slots[np.argsort(-estimate.sum(axis=0), kind="stable")[:max_candidates]]


def best_k(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best ``(rows, scores)``, best first; ties keep their order."""
    order = np.argsort(-scores, kind="stable")[:k]
    return rows[order], scores[order]
