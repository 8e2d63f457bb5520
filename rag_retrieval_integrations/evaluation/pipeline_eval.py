"""A retrieve-then-rerank pipeline: a first stage's top ``N`` per query, reranked, and measured.

The first stage is either a retriever built exactly as ``rag-retrieval-eval retrieval`` builds it
(:func:`~rag_retrieval_integrations.evaluation.retrieval_eval.build_index`: ``embedding``, ``mrl``
or ``colbert`` over the set's corpus) or a TREC run file of candidates, one
``qid Q0 docid rank score tag`` per line (whitespace-separated; ordered by score, highest first, as
``trec_eval`` orders a run, ties by the file's rank). Each query's ``N`` best candidates
(``rerank_depth``) are scored by every reranker; the final run holds **only those N reranked
documents**, as BEIR's and MTEB's reranking evaluations do: a relevant document the first stage
did not bring into its top ``N`` counts as not retrieved. The first stage's recall@N, measured on
the same candidates, is the ceiling of the final recall.

Candidates are retrieved (or read) once and shared by every reranker.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data_files import DataFormatError, iter_lines
from .metrics import PIPELINE_METRICS, deepest_cutoff, evaluate_run
from .retrieval_data import RetrievalSet
from .retrieval_eval import ModelPath, build_index, resolve_retriever, retrieve

DEFAULT_RERANK_DEPTH = 100
FIRST_STAGE_ROW = "(first stage)"
"""The ``model`` of the row that scores the candidates in the first stage's own order."""


@dataclass
class Candidates:
    """Each query's first-stage top ``depth``: ``run[query_id] = [(doc_id, score), ...]``, best first.

    ``source`` names the first stage (the retriever's model or the run file); ``retriever`` is its
    kind (``embedding``, ``mrl``, ``colbert``, or ``run-file``).
    """

    run: dict[str, list[tuple[str, float]]]
    depth: int
    source: str
    retriever: str
    seconds: float = 0.0

    @property
    def recall_key(self) -> str:
        """The name of the first stage's recall column: ``first-stage R@<depth>``."""
        return f"first-stage R@{self.depth}"

    def as_run(self) -> dict[str, dict[str, float]]:
        return {q: dict(found) for q, found in self.run.items()}


def check_rerank_depth(rerank_depth: int, metrics: Sequence[str]) -> int:
    """``rerank_depth`` if it is a positive integer at least as deep as the metrics' deepest cutoff."""
    if isinstance(rerank_depth, bool) or not isinstance(rerank_depth, int) or rerank_depth < 1:
        raise ValueError(f"the rerank depth (--rerank-depth) must be a whole number >= 1, got {rerank_depth!r}")
    cutoff = deepest_cutoff(metrics)
    if cutoff is not None and rerank_depth < cutoff:
        raise ValueError(
            f"rerank depth {rerank_depth} is shallower than the metrics' deepest cutoff ({cutoff}): the final run "
            f"holds only the reranked top {rerank_depth}; rerank at least {cutoff} or lower the metrics' cutoffs"
        )
    return rerank_depth


def read_run_file(path: str | os.PathLike[str], data: RetrievalSet, depth: int) -> Candidates:
    """The top ``depth`` candidates per query of a TREC run file (``qid Q0 docid rank score tag``).

    Lines of queries the set leaves out (no relevant document, past ``max_queries``) are skipped;
    a query id the set does not have, a document id not in its corpus, a pair listed twice or a
    malformed line raise :class:`DataFormatError` naming ``file:line``. A query of the set with
    no line has no candidates (it scores 0).
    """
    path = Path(path)
    corpus = set(data.doc_ids)
    found: dict[str, dict[str, tuple[float, int]]] = {}
    for line, text in iter_lines(path):
        if not text.strip():
            continue
        fields = text.split()
        if len(fields) != 6:
            raise DataFormatError(
                path, line, f"expected 6 fields 'qid Q0 docid rank score tag', got {len(fields)}: {text!r:.80}"
            )
        qid, _, doc_id, rank_text, score_text, _ = fields
        try:
            rank, score = int(rank_text), float(score_text)
        except ValueError:
            raise DataFormatError(
                path, line, f"rank must be an integer and score a number, got {rank_text!r}, {score_text!r}"
            ) from None
        if not math.isfinite(score):  # NaN sorts anywhere: the candidates' order would be made up
            raise DataFormatError(path, line, f"score must be a finite number, got {score_text!r}")
        if qid not in data.qrels:
            if qid in data.left_out_query_ids:
                continue
            raise DataFormatError(path, line, f"query id {qid!r} is not a query of {data.source}")
        if doc_id not in corpus:
            raise DataFormatError(path, line, f"document id {doc_id!r} is not in the corpus of {data.source}")
        if doc_id in found.setdefault(qid, {}):
            raise DataFormatError(path, line, f"the pair ({qid!r}, {doc_id!r}) is listed twice")
        found[qid][doc_id] = (score, rank)
    if not found:
        raise DataFormatError(path, None, f"no candidates for any query of {data.source}")
    run = {
        qid: [(d, score) for d, (score, _) in sorted(docs.items(), key=lambda item: (-item[1][0], item[1][1]))][:depth]
        for qid, docs in found.items()
    }
    return Candidates(run, depth, str(path), "run-file")


def retrieve_candidates(
    model: ModelPath,
    data: RetrievalSet,
    depth: int,
    *,
    retriever: str = "auto",
    options: Mapping[str, Any] | None = None,
    show_progress: bool | None = None,
    index_dir: str | os.PathLike[str] | None = None,
) -> Candidates:
    """The top ``depth`` documents per query of ``model``'s index of the corpus (built, or loaded
    from ``index_dir``, as ``rag-retrieval-eval retrieval`` does; ``options`` as there)."""
    options = dict(options or {})
    kind = resolve_retriever(model, retriever, revision=options.get("revision"), token=options.get("token"))
    started = time.perf_counter()
    index = build_index(model, kind, data, options=options, show_progress=show_progress, index_dir=index_dir)
    hits = retrieve(index, data.query_texts, min(depth, len(data.doc_ids)), show_progress=show_progress)
    run = {qid: [(hit.id, float(hit.score)) for hit in found] for qid, found in zip(data.query_ids, hits)}
    return Candidates(run, depth, os.fspath(model), kind, round(time.perf_counter() - started, 3))


def first_stage_row(data: RetrievalSet, candidates: Candidates, metrics: Sequence[str]) -> dict[str, Any]:
    """The metrics of the candidates in the first stage's own order (the baseline of the rerankers)."""
    run = candidates.as_run()
    return {
        "model": FIRST_STAGE_ROW,
        "family": candidates.retriever,
        **_common(data, candidates, run),
        **evaluate_run(run, data.qrels, metrics),
        "seconds": candidates.seconds,
        "truncated": "-",
    }


def rerank_candidates(
    ranker: Any,
    data: RetrievalSet,
    candidates: Candidates,
    metrics: Sequence[str] = PIPELINE_METRICS,
    *,
    name: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """One row: ``ranker``'s scores of every query's candidates (one batched ``rank_many``), measured."""
    texts = dict(zip(data.doc_ids, data.doc_texts))
    qids = [q for q in data.query_ids if candidates.run.get(q)]
    query_text = dict(zip(data.query_ids, data.query_texts))
    started = time.perf_counter()
    ranked = ranker.rank_many(
        [query_text[q] for q in qids],
        [[texts[d] for d, _ in candidates.run[q]] for q in qids],
        batch_size=batch_size,
    )
    seconds = time.perf_counter() - started
    run = {q: {candidates.run[q][r.index][0]: float(r.score) for r in results} for q, results in zip(qids, ranked)}
    truncation = getattr(ranker, "truncation_totals", None)
    return {
        "model": name if name is not None else str(getattr(ranker, "model_name_or_path", type(ranker).__name__)),
        "family": str(getattr(ranker, "model_type", "") or type(ranker).__name__),
        **_common(data, candidates, candidates.as_run()),
        **evaluate_run(run, data.qrels, metrics),
        "seconds": round(seconds, 3),
        "truncated": "-" if truncation is None else truncation.summary(ranker.max_length),
    }


def _common(data: RetrievalSet, candidates: Candidates, first_run: dict[str, dict[str, float]]) -> dict[str, Any]:
    recall = f"R@{candidates.depth}"
    return {
        "first_stage": candidates.source,
        "retriever": candidates.retriever,
        candidates.recall_key: evaluate_run(first_run, data.qrels, [recall])[recall],
        "rerank_depth": candidates.depth,
        "pairs": sum(len(found) for found in candidates.run.values()),
        "queries_without_relevant": data.queries_without_relevant,
        "queries_without_candidates": sum(1 for q in data.query_ids if not candidates.run.get(q)),
    }


def evaluate_pipeline(
    data: RetrievalSet,
    rerankers: Iterable[Any],
    *,
    first_stage: ModelPath | None = None,
    run_file: str | os.PathLike[str] | None = None,
    retriever: str = "auto",
    rerank_depth: int = DEFAULT_RERANK_DEPTH,
    metrics: Sequence[str] = PIPELINE_METRICS,
    first_stage_options: Mapping[str, Any] | None = None,
    model_type: str | None = None,
    options: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    show_progress: bool | None = None,
    index_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Retrieve (or read) each query's top ``rerank_depth`` candidates once, rerank them with each
    of ``rerankers`` and measure the final runs.

    Args:
        data: the set, from :func:`~rag_retrieval_integrations.evaluation.load_retrieval_set`.
        rerankers: loaded rankers (``Reranker(...)``, named by their checkpoint), ``(name, ranker)``
            pairs, or checkpoint paths / hub ids, loaded one at a time with
            ``Reranker(path, model_type, **options)``. An iterator is consumed after the first stage.
        first_stage: an embedding or ColBERT checkpoint, indexed as ``retriever`` (see
            :func:`~rag_retrieval_integrations.evaluation.evaluate_retriever`) with ``first_stage_options``.
        run_file: instead of ``first_stage``, a TREC run file of candidates (see :func:`read_run_file`).
        rerank_depth: candidates per query reranked; the final run holds only those.
        metrics: ``ir_measures`` names measured on each final run.

    Returns:
        one row per ranking, first the first stage's own (``model`` = ``"(first stage)"``), then one
        per reranker: ``first-stage R@<depth>``, the metrics, ``queries`` (scored), the counts of
        queries left out and without candidates, ``pairs`` reranked, ``seconds``.
    """
    depth = check_rerank_depth(rerank_depth, metrics)
    if (first_stage is None) == (run_file is None):
        raise ValueError("give the first stage: a retriever model or a run file, not both and not neither")
    if run_file is not None:
        candidates = read_run_file(run_file, data, depth)
    else:
        assert first_stage is not None
        candidates = retrieve_candidates(
            first_stage,
            data,
            depth,
            retriever=retriever,
            options=first_stage_options,
            show_progress=show_progress,
            index_dir=index_dir,
        )
    rows = [first_stage_row(data, candidates, metrics)]
    for item in rerankers:
        name, ranker = item if isinstance(item, tuple) else (None, item)
        if isinstance(ranker, (str, os.PathLike)):
            from rag_retrieval_integrations import Reranker

            name = os.fspath(ranker)
            model_options = dict(options or {})
            if show_progress is not None:
                model_options.setdefault("show_progress_bar", show_progress)
            ranker = Reranker(name, model_type=model_type, **model_options)
        rows.append(rerank_candidates(ranker, data, candidates, metrics, name=name, batch_size=batch_size))
        del ranker  # one reranker in memory at a time
    return rows
