"""Ranking results: what ``rank`` and ``rank_many`` return."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload


@dataclass(frozen=True)
class RankResult:
    """One ranked document.

    Attributes:
        index: position of the document in the list the caller passed in.
        text: the document text, as passed in.
        score: the model's score (raw, or in (0, 1) when ranked with ``normalize=True``).
        rank: 1 for the best document.
    """

    index: int
    text: str
    score: float
    rank: int

    @property
    def doc_id(self) -> int:
        """``index`` under the name the original ``rag_retrieval`` package's ``Result`` gave it."""
        return self.index


class RankedResults(Sequence[RankResult]):
    """The documents of one query, best first.

    Iterable and indexable like a list of :class:`RankResult`; ties keep the caller's order.

    >>> results = ranker.rank("what is a panda?", docs)      # doctest: +SKIP
    >>> results[0].text, results[0].index, results[0].score  # doctest: +SKIP
    """

    def __init__(self, query: str, results: Sequence[RankResult]) -> None:
        self.query = query
        self._results = tuple(results)

    @classmethod
    def from_scores(cls, query: str, docs: Sequence[str], scores: Sequence[float]) -> RankedResults:
        """Sort ``docs`` by ``scores``, best first; a stable sort keeps ties in input order."""
        order = sorted(range(len(docs)), key=lambda i: -scores[i])
        return cls(
            query,
            [RankResult(index=i, text=docs[i], score=float(scores[i]), rank=r) for r, i in enumerate(order, start=1)],
        )

    def top_k(self, k: int | None) -> RankedResults:
        """The first ``k`` results (all of them when ``k`` is ``None``)."""
        if k is None:
            return self
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ValueError(f"top_k must be a non-negative integer or None, got {k!r}")
        return RankedResults(self.query, self._results[:k])

    # ---- the names of the original ``rag_retrieval`` package's ``RankedResults`` ----------------

    @property
    def results(self) -> list[RankResult]:
        """The results as a list, best first (``rag_retrieval``'s ``RankedResults.results``)."""
        return list(self._results)

    @property
    def has_scores(self) -> bool:
        """Always ``True``: every ranker here scores its documents (``rag_retrieval`` had rank-only results)."""
        return True

    def results_count(self) -> int:
        """The number of results (``len(results)``)."""
        return len(self._results)

    def get_score_by_docid(self, doc_id: int) -> float | None:
        """The score of the document passed at position ``doc_id``; ``None`` when it is not among
        these results (cut by ``top_k``, or no such position), as in ``rag_retrieval``."""
        return next((r.score for r in self._results if r.index == doc_id), None)

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self._results]

    @property
    def indices(self) -> list[int]:
        return [r.index for r in self._results]

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self._results]

    @overload
    def __getitem__(self, i: int) -> RankResult: ...
    @overload
    def __getitem__(self, i: slice) -> RankedResults: ...
    def __getitem__(self, i: int | slice) -> RankResult | RankedResults:
        if isinstance(i, slice):
            return RankedResults(self.query, self._results[i])
        return self._results[i]

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[RankResult]:
        return iter(self._results)

    def __repr__(self) -> str:
        head = ", ".join(f"({r.rank}) #{r.index} {r.score:.4g}" for r in self._results[:5])
        more = f", ... {len(self) - 5} more" if len(self) > 5 else ""
        return f"RankedResults(query={self.query!r}, [{head}{more}])"
