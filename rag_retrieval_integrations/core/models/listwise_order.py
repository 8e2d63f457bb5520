"""Listwise ranking, model-free: the sliding window, the parsing of a model's permutation, scores.

A listwise LLM reads a query and a window of numbered passages and answers with an order
(``[3] > [1] > [2]``). Everything here is what that answer becomes, the same for a local model and
an OpenAI-compatible endpoint: :func:`parse_permutation` turns any answer into a full order of the
window (repairs counted), :class:`SlidingWindow` moves the window over a longer list (RankGPT's
back-to-front pass), and :func:`listwise_scores` groups a call's pairs by query and scores each
document by the reciprocal of its final rank.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..options import check_positive_int

logger = logging.getLogger(__name__)

WindowRanker = Callable[[str, list[str]], "tuple[list[int], PermutationRepairs]"]
"""``(query, passages) -> (order, repairs)``: one window ranked, best first, as positions in ``passages``."""


@dataclass
class PermutationRepairs:
    """What parsing a model's permutation had to repair, counted.

    Attributes:
        windows: windows parsed.
        repaired_windows: windows whose answer needed at least one repair.
        missing: identifiers the answer left out (put after the ranked ones, in input order).
        duplicate: identifiers given again after their first place (dropped).
        unknown: identifiers outside the window (dropped).
    """

    windows: int = 0
    repaired_windows: int = 0
    missing: int = 0
    duplicate: int = 0
    unknown: int = 0

    @property
    def repairs(self) -> int:
        return self.missing + self.duplicate + self.unknown

    def add(self, other: PermutationRepairs) -> None:
        self.windows += other.windows
        self.repaired_windows += other.repaired_windows
        self.missing += other.missing
        self.duplicate += other.duplicate
        self.unknown += other.unknown


_BRACKETED = re.compile(r"\[\s*([A-Za-z]+|\d+)\s*\]")
_BARE_NUMBER = re.compile(r"\d+")


def parse_permutation(answer: str, labels: Sequence[str]) -> tuple[list[int], PermutationRepairs]:
    """The order an answer gives to the passages labelled ``labels`` (``"1"``, ``"2"``... or ``"A"``...).

    Identifiers are read in brackets (``[2] > [1]``); an answer with none in brackets is read for
    bare numbers (``2 > 1``) when the labels are numbers. Never raises: identifiers that are not
    labels and repeats are dropped, and the labels the answer left out follow the ranked ones in
    their input order. Each repair is counted in the returned :class:`PermutationRepairs`.
    """
    position = {label.upper(): i for i, label in enumerate(labels)}
    found = [m.upper() for m in _BRACKETED.findall(answer)]
    if not found and all(label.isdigit() for label in labels):
        found = _BARE_NUMBER.findall(answer)
    order: list[int] = []
    seen: set[int] = set()
    repairs = PermutationRepairs(windows=1)
    for label in found:
        i = position.get((label.lstrip("0") or "0") if label.isdigit() else label)
        if i is None:
            repairs.unknown += 1
        elif i in seen:
            repairs.duplicate += 1
        else:
            seen.add(i)
            order.append(i)
    missing = [i for i in range(len(labels)) if i not in seen]
    repairs.missing = len(missing)
    repairs.repaired_windows = int(repairs.repairs > 0)
    return order + missing, repairs


def parse_answer(answer: str, labels: Sequence[str]) -> tuple[list[int], PermutationRepairs]:
    """:func:`parse_permutation`, with the answer logged at INFO where it needed repairs."""
    order, repairs = parse_permutation(answer, labels)
    if repairs.repairs:
        logger.info("window answer %r repaired: %s", answer[:200], repairs)
    return order, repairs


@dataclass(frozen=True)
class SlidingWindow:
    """RankGPT's sliding window: rank the last ``window_size`` documents, move ``step`` (default:
    half the window) towards the front, rank again, until the window holds the first document;
    ``passes`` times.

    One pass carries the best documents of the whole list to the front (each window hands its best
    ``window_size - step`` on to the next), so the top of the ranking is right after one pass
    while the order further down is partial. A list no longer than ``window_size`` is one window.
    """

    window_size: int = 20
    step: int | None = None
    passes: int = 1

    def __post_init__(self) -> None:
        check_positive_int(self.window_size, "window_size")
        if self.step is None:  # half the window, as RankGPT's 20/10
            object.__setattr__(self, "step", max(self.window_size // 2, 1))
        check_positive_int(self.step, "step")
        check_positive_int(self.passes, "passes")
        if self.step > self.window_size:
            raise ValueError(
                f"step={self.step} is more than window_size={self.window_size}: documents between windows would "
                "never be ranked; use a step of at most the window size (half of it, 10 of 20, is usual)"
            )

    def windows(self, n: int) -> list[tuple[int, int]]:
        """The ``[start, end)`` spans of one pass over ``n`` documents, in the order they are ranked."""
        if n <= self.window_size:
            return [(0, n)]
        spans, end = [], n
        while True:
            start = max(end - self.window_size, 0)
            spans.append((start, end))
            if start == 0:
                return spans
            end -= self.step  # type: ignore[operator]  # set in __post_init__

    def order(self, query: str, docs: list[str], rank_window: WindowRanker) -> tuple[list[int], PermutationRepairs]:
        """The final order of ``docs`` (positions, best first) and the repairs its windows needed."""
        order = list(range(len(docs)))
        repairs = PermutationRepairs()
        for _ in range(self.passes if len(docs) > 1 else 0):
            for start, end in self.windows(len(docs)):
                span = order[start:end]
                window_order, window_repairs = rank_window(query, [docs[i] for i in span])
                order[start:end] = [span[i] for i in window_order]
                repairs.add(window_repairs)
        return order, repairs

    def scores(
        self,
        queries: list[str],
        docs: list[str],
        rank_window: WindowRanker,
        on_query: Callable[[int], object] | None = None,
    ) -> tuple[np.ndarray, PermutationRepairs]:
        """A listwise ranker's raw scores of aligned pairs (:func:`listwise_scores` over :meth:`order`)
        and the repairs its windows needed; ``on_query(1)`` after each query (a progress bar)."""
        repairs = PermutationRepairs()

        def rank_list(query: str, docs_of_query: list[str]) -> list[int]:
            order, found = self.order(query, docs_of_query, rank_window)
            repairs.add(found)
            if on_query is not None:
                on_query(1)
            return order

        return listwise_scores(queries, docs, rank_list), repairs


def listwise_scores(
    queries: list[str], docs: list[str], rank_list: Callable[[str, list[str]], list[int]]
) -> np.ndarray:
    """Scores of aligned pairs ranked listwise: the pairs grouped by query (each query's documents
    in input order), each group ordered by ``rank_list`` (positions, best first), and each document
    scored ``1 / rank`` within its group (1.0 for the best, 0.5 for the second...)."""
    groups: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        groups.setdefault(query, []).append(i)
    scores = np.zeros(len(docs), dtype=np.float64)
    for query, members in groups.items():
        order = rank_list(query, [docs[i] for i in members])
        for rank, position in enumerate(order, start=1):
            scores[members[position]] = 1.0 / rank
    return scores


def log_repairs(repairs: PermutationRepairs, where: str) -> None:
    """One line per call whose answers needed repairs: a WARNING with the counts."""
    if repairs.repairs:
        logger.warning(
            "%s: %d of %d windows' answers were not a full permutation and were repaired (%d identifiers "
            "missing and put after the ranked ones in input order, %d duplicates and %d unknown identifiers "
            "dropped); a model this unsure ranks little better than the input order",
            where,
            repairs.repaired_windows,
            repairs.windows,
            repairs.missing,
            repairs.duplicate,
            repairs.unknown,
        )
