"""``Ranker``: the small base of everything that ranks, built on one raw-score method.

A ranker implements :meth:`Ranker._score` (raw scores for aligned, validated query/document
lists); the public API is built on it once, here: :meth:`~Ranker.score_pairs` (raw scores in
input order), ``compute_score``, ``rank``, ``rank_many`` and their async forms. Checkpoint
families (:class:`~.base.BaseReranker`), the remote client and a user's own class all are rankers;
the server scores its micro-batches with ``score_pairs`` and sorts each request once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import numpy as np

from ..options import check_positive_int, unknown_options
from ..results import RankedResults
from ..text.inputs import check_docs, check_pairs, check_query, is_single_pair

DEFAULT_BATCH_SIZE = 32

# ``rerank``'s ``long_doc_process_strategy`` values (the original ``rag_retrieval`` package's) and
# the ``long_doc`` mode each is
LONG_DOC_STRATEGIES = {"max_score_slice": "split-max", "max_length_truncation": "truncate"}


def sigmoid(scores: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-scores))


def rank_from_raw(
    query: str, docs: list[str], raw: np.ndarray, normalize: bool, top_k: int | None = None
) -> RankedResults:
    """A ranking from raw scores in input order: the sigmoid first when ``normalize`` (so scores that
    saturate to 1.0 tie, and keep input order), then the stable sort, then ``top_k``. Every ranking
    (``rank``, ``rank_many``, the server's micro-batches) is built here."""
    return RankedResults.from_scores(query, docs, sigmoid(raw) if normalize else raw).top_k(top_k)


def call_options(ranker: Ranker) -> frozenset[str]:
    """The per-call options a ranker takes: the keyword parameters of its ``_score``."""
    score = ranker._score
    return _score_options(getattr(score, "__func__", score))


@functools.cache
def _score_options(score: Callable[..., Any]) -> frozenset[str]:
    # keyed by the function itself, not the class: read once per function, never stale when a
    # ``_score`` is replaced (a subclass, a wrapper, a test's spy)
    return frozenset(inspect.signature(score).parameters) - {"self", "queries", "docs", "batch_size"}


class Ranker(ABC):
    """Scores (query, document) pairs and ranks documents; subclasses implement :meth:`_score`.

    Everything public is built here once, on :meth:`_score`: validation of the input, per-call
    options, duplicate pairs scored once, ``normalize``, ranking, ``top_k`` and the async forms
    (a worker thread by default; a ranker with native async I/O overrides :meth:`_ascore`).

    Attributes:
        model_type: the family's name (``"cross-encoder"``, ``"remote"``...), for messages and the server.
        batch_size: model inputs per forward pass when a call gives none.
    """

    model_type: ClassVar[str] = ""
    batch_size: int = DEFAULT_BATCH_SIZE
    listwise: ClassVar[bool] = False
    """Whether a document's score depends on the other documents of its query in the same call (a
    listwise LLM): ``rank_many`` then ranks each query on its own, and the server never scores two
    requests in one pass nor splits one request into several."""
    setting_options: ClassVar[frozenset[str]] = frozenset()
    """Per-call options that change how one call scores rather than what :meth:`_score` computes (a
    checkpoint family's ``max_length``, ``long_doc`` and ``show_progress_bar``): taken out of the
    call's options and given to :meth:`_scoring`, which applies them for that call only."""

    # ---- what a ranker implements ----------------------------------------------------------

    @abstractmethod
    def _score(self, queries: list[str], docs: list[str], batch_size: int, **options: Any) -> np.ndarray:
        """Raw scores (float64, one per pair, input order) for the aligned ``queries[i]``, ``docs[i]``.

        The lists are validated, non-empty and free of duplicate pairs. ``queries`` typically repeats
        one string many times (``rank`` passes one entry per document): encode each distinct query
        once. A ranker may return one row of scores per pair (shape ``(pairs, k)``, e.g. one per
        layer); ``options`` are its per-call options (e.g. ``cutoff_layers``).
        """

    def _scoring(self, **settings: Any) -> AbstractContextManager[Any]:
        """What one scoring call runs inside (a checkpoint family: its lock, the call's
        ``settings`` (see :attr:`setting_options`) and its truncation count)."""
        return nullcontext()

    async def _ascore(self, queries: list[str], docs: list[str], batch_size: int, **options: Any) -> np.ndarray:
        """:meth:`_score`, awaitable: in a worker thread, so the event loop keeps running meanwhile."""
        return await asyncio.to_thread(self._scored, queries, docs, batch_size, options)

    # ---- raw scores --------------------------------------------------------------------------

    def score_pairs(
        self, queries: Sequence[str], docs: Sequence[str], *, batch_size: int | None = None, **options: Any
    ) -> np.ndarray:
        """Raw scores of ``(queries[i], docs[i])``, in input order (float64; one row per pair and a
        column per layer when a call asks for several ``cutoff_layers``). What ``compute_score``,
        ``rank`` and ``rank_many`` are built on, and what the server scores its batches with."""
        queries, docs = _aligned(queries, docs)
        return self._raw(queries, docs, batch_size, options)

    async def ascore_pairs(
        self, queries: Sequence[str], docs: Sequence[str], *, batch_size: int | None = None, **options: Any
    ) -> np.ndarray:
        """:meth:`score_pairs`, awaitable."""
        queries, docs = _aligned(queries, docs)
        return await self._araw(queries, docs, batch_size, options)

    def _raw(self, queries: list[str], docs: list[str], batch_size: int | None, options: dict[str, Any]) -> np.ndarray:
        return self._scored(queries, docs, self._batch_size(batch_size, options), options)

    async def _araw(
        self, queries: list[str], docs: list[str], batch_size: int | None, options: dict[str, Any]
    ) -> np.ndarray:
        size = self._batch_size(batch_size, options)
        if not docs:
            return np.zeros(0, dtype=np.float64)
        return _squeezed(await self._ascore(queries, docs, size, **options))

    def _batch_size(self, batch_size: int | None, options: dict[str, Any]) -> int:
        """The call's batch size, after checking its per-call options (input is checked before any work)."""
        unknown = sorted(set(options) - call_options(self) - self.setting_options)
        if unknown:
            accepted = call_options(self) | self.setting_options | {"normalize", "batch_size", "top_k"}
            raise TypeError(
                f"{type(self).__name__} got unexpected per-call option(s): {unknown_options(unknown, set(accepted))}"
            )
        return self.batch_size if batch_size is None else check_positive_int(batch_size, "batch_size")

    def _scored(self, queries: list[str], docs: list[str], batch_size: int, options: dict[str, Any]) -> np.ndarray:
        if not docs:
            return np.zeros(0, dtype=np.float64)
        # A pair given twice is scored once: duplicates get bit-equal scores (so a stable sort keeps
        # their input order; two rows of one padded batch can differ in the last bits), and less work.
        pair_index: dict[tuple[str, str], int] = {}
        inverse = np.fromiter(
            (pair_index.setdefault(pair, len(pair_index)) for pair in zip(queries, docs)), np.int64, len(docs)
        )
        if len(pair_index) < len(docs):
            queries, docs = [q for q, _ in pair_index], [d for _, d in pair_index]
        settings = {k: v for k, v in options.items() if k in self.setting_options}
        options = {k: v for k, v in options.items() if k not in settings}
        with self._scoring(**settings):
            scores = np.asarray(self._score(queries, docs, batch_size, **options), dtype=np.float64)
        if len(pair_index) < len(inverse):
            scores = scores[inverse]
        return _squeezed(scores)

    # ---- public API ------------------------------------------------------------------------

    def compute_score(
        self,
        pairs: Sequence[Sequence[str]] | tuple[str, str],
        *,
        normalize: bool = False,
        batch_size: int | None = None,
        enable_tqdm: bool | None = None,
        **options: Any,
    ) -> Any:
        """Score ``(query, document)`` pairs, in input order: a list of floats, or one float for a
        single pair (a tuple or list of two strings).

        Raw scores are what the model's head outputs; ``normalize=True`` maps them to (0, 1) with a
        sigmoid so that one threshold works across model kinds. ``options`` are the ranker's per-call
        options (a checkpoint family's ``max_length``, ``long_doc``, ``show_progress_bar``, of which
        ``enable_tqdm`` is another name); a family asked for several scores per pair (an LLM with
        several ``cutoff_layers``) returns one list per layer.
        """
        queries, docs = check_pairs(pairs)
        raw = self._raw(queries, docs, batch_size, _progress_option(options, enable_tqdm))
        return _as_lists(raw, normalize, single=is_single_pair(pairs))

    def rank(
        self,
        query: str,
        docs: Sequence[str],
        *,
        top_k: int | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        **options: Any,
    ) -> RankedResults:
        """Rank ``docs`` for ``query``, best first; each result keeps its original index."""
        query, docs = check_query(query), check_docs(docs)
        raw = one_score_per_pair(self._raw([query] * len(docs), docs, batch_size, options))
        return rank_from_raw(query, docs, raw, normalize, top_k)

    def rerank(
        self,
        query: str,
        docs: Sequence[str],
        *,
        top_k: int | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        long_doc_process_strategy: str | None = None,
        enable_tqdm: bool | None = None,
        **options: Any,
    ) -> RankedResults:
        """:meth:`rank` under the name and options of the original ``rag_retrieval`` package.

        ``long_doc_process_strategy`` is ``"max_score_slice"`` (``long_doc="split-max"``: a long
        document scores as its best window) or ``"max_length_truncation"`` (``long_doc="truncate"``);
        ``None`` is ``"max_score_slice"``, as it was there, for a ranker that splits long documents
        (a remote one leaves it to its server). ``enable_tqdm`` is ``show_progress_bar``; ``max_length``
        and the ranker's other per-call options pass through.
        """
        options = _progress_option(options, enable_tqdm)
        if long_doc_process_strategy is not None:
            if long_doc_process_strategy not in LONG_DOC_STRATEGIES:
                raise ValueError(
                    f"long_doc_process_strategy must be one of {list(LONG_DOC_STRATEGIES)}, got "
                    f"{long_doc_process_strategy!r}"
                )
            options["long_doc"] = LONG_DOC_STRATEGIES[long_doc_process_strategy]
        elif "long_doc" in self.setting_options:
            options.setdefault("long_doc", LONG_DOC_STRATEGIES["max_score_slice"])
        return self.rank(query, docs, top_k=top_k, normalize=normalize, batch_size=batch_size, **options)

    def rank_many(
        self,
        queries: Sequence[str],
        docs_per_query: Sequence[Sequence[str]],
        *,
        top_k: int | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        **options: Any,
    ) -> list[RankedResults]:
        """Rank several queries' documents in one batched pass over all pairs (a listwise ranker:
        each query on its own, so that two entries of the same query are not ranked as one list)."""
        queries, doc_lists = _query_lists(queries, docs_per_query)
        raws = self._raw_many(queries, doc_lists, batch_size, options)
        return [rank_from_raw(q, d, raw, normalize, top_k) for q, d, raw in zip(queries, doc_lists, raws)]

    def score_many(
        self,
        queries: Sequence[str],
        docs_per_query: Sequence[Sequence[str]],
        *,
        normalize: bool = False,
        batch_size: int | None = None,
        **options: Any,
    ) -> list[list[float]]:
        """The scores :meth:`rank_many` ranks by, in input order: one list per query, from one batched
        pass over all pairs (a listwise ranker scores each query's list on its own, so two entries of
        the same query are never scored as one list). What a teacher scores candidate groups with."""
        queries, doc_lists = _query_lists(queries, docs_per_query)
        raws = self._raw_many(queries, doc_lists, batch_size, options)
        return [(sigmoid(raw) if normalize else raw).tolist() for raw in raws]

    def _raw_many(
        self, queries: list[str], doc_lists: list[list[str]], batch_size: int | None, options: dict[str, Any]
    ) -> list[np.ndarray]:
        """One score per pair for each query's documents (several queries in one pass unless listwise)."""
        if self.listwise:
            return [
                one_score_per_pair(self._raw([q] * len(d), d, batch_size, options)) for q, d in zip(queries, doc_lists)
            ]
        flat_queries = [q for q, d in zip(queries, doc_lists) for _ in d]
        raw = one_score_per_pair(self._raw(flat_queries, [x for d in doc_lists for x in d], batch_size, options))
        return _split(raw, doc_lists)

    # ---- the same, awaitable -------------------------------------------------------------------

    async def acompute_score(
        self,
        pairs: Sequence[Sequence[str]] | tuple[str, str],
        *,
        normalize: bool = False,
        batch_size: int | None = None,
        enable_tqdm: bool | None = None,
        **options: Any,
    ) -> Any:
        """:meth:`compute_score`, awaitable (a worker thread; native async I/O for a remote model)."""
        queries, docs = check_pairs(pairs)
        raw = await self._araw(queries, docs, batch_size, _progress_option(options, enable_tqdm))
        return _as_lists(raw, normalize, single=is_single_pair(pairs))

    async def arank(
        self,
        query: str,
        docs: Sequence[str],
        *,
        top_k: int | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        **options: Any,
    ) -> RankedResults:
        """:meth:`rank`, awaitable."""
        query, docs = check_query(query), check_docs(docs)
        raw = one_score_per_pair(await self._araw([query] * len(docs), docs, batch_size, options))
        return rank_from_raw(query, docs, raw, normalize, top_k)

    async def arank_many(
        self,
        queries: Sequence[str],
        docs_per_query: Sequence[Sequence[str]],
        *,
        top_k: int | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        **options: Any,
    ) -> list[RankedResults]:
        """:meth:`rank_many`, awaitable."""
        queries, doc_lists = _query_lists(queries, docs_per_query)
        if self.listwise:
            return [
                await self.arank(q, d, top_k=top_k, normalize=normalize, batch_size=batch_size, **options)
                for q, d in zip(queries, doc_lists)
            ]
        flat_queries = [q for q, d in zip(queries, doc_lists) for _ in d]
        raw = one_score_per_pair(await self._araw(flat_queries, [x for d in doc_lists for x in d], batch_size, options))
        return [rank_from_raw(q, d, r, normalize, top_k) for q, d, r in zip(queries, doc_lists, _split(raw, doc_lists))]


def _aligned(queries: Any, docs: Any) -> tuple[list[str], list[str]]:
    queries, docs = check_docs(queries, "queries"), check_docs(docs)
    if len(queries) != len(docs):
        raise ValueError(f"score_pairs needs one query per document: got {len(queries)} queries and {len(docs)} docs")
    return queries, docs


def _query_lists(queries: Any, docs_per_query: Any) -> tuple[list[str], list[list[str]]]:
    """``rank_many``'s input, checked: the queries and one list of documents per query."""
    queries = check_docs(queries, "queries")
    if isinstance(docs_per_query, (str, bytes)) or not isinstance(docs_per_query, Sequence):
        raise TypeError(f"docs_per_query must be a list of lists of strings, got {type(docs_per_query).__name__}")
    if len(queries) != len(docs_per_query):
        raise ValueError(
            f"one list of documents per query is needed: got {len(queries)} queries "
            f"and {len(docs_per_query)} document lists"
        )
    return queries, [check_docs(d, f"docs_per_query[{i}]") for i, d in enumerate(docs_per_query)]


def _split(raw: np.ndarray, doc_lists: list[list[str]]) -> list[np.ndarray]:
    """The flat scores of all lists' pairs, cut back into one array per list."""
    bounds = np.cumsum([0] + [len(d) for d in doc_lists])
    return [raw[bounds[i] : bounds[i + 1]] for i in range(len(doc_lists))]


def _squeezed(scores: np.ndarray) -> np.ndarray:
    """One score per pair as a 1-D array (a ranker may return a single column)."""
    return scores[:, 0] if scores.ndim == 2 and scores.shape[1] == 1 else scores


def _as_lists(raw: np.ndarray, normalize: bool, single: bool = False) -> Any:
    """``compute_score``'s answer: a list of scores (one list per layer for several layers); for a
    single pair, its score (a list of one score per layer)."""
    scores = sigmoid(raw) if normalize else raw
    if single:
        return scores[0].tolist()
    return scores.T.tolist() if scores.ndim == 2 else scores.tolist()


def _progress_option(options: dict[str, Any], enable_tqdm: bool | None) -> dict[str, Any]:
    """The call's options with ``enable_tqdm`` (the original ``rag_retrieval``'s name) as ``show_progress_bar``."""
    if enable_tqdm is None:
        return dict(options)
    if "show_progress_bar" in options:
        raise TypeError("pass show_progress_bar or enable_tqdm (the same option), not both")
    return {**options, "show_progress_bar": enable_tqdm}


def one_score_per_pair(scores: np.ndarray) -> np.ndarray:
    """One score per pair, for ranking."""
    if scores.ndim != 1:
        raise ValueError(
            f"ranking needs one score per document, but this call gives {scores.shape[1]} (one per cutoff "
            "layer); pass a single layer, e.g. cutoff_layers=[n], or use compute_score for all of them"
        )
    return scores
