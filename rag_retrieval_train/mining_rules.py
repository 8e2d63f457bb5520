"""The rules that turn one batch of query lines and an index into mined negatives (the module doc of
:mod:`rag_retrieval_train.mining` states them). Shared by the single-process miner and the batch job
(:mod:`rag_retrieval_train.mining_job`), so both write the same lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rag_retrieval_integrations.core.indexes.base import Index
from rag_retrieval_integrations.core.models.base import BaseReranker

from .data.embedding_data import row_rng
from .data.jsonl import validate_example

QUERY_BATCH = 256  # query lines encoded and searched per step by either path (a progress-bar tick in this process)

Sampling = Literal["top", "random"]


@dataclass(frozen=True)
class MiningRules:
    """The settings of :func:`~rag_retrieval_train.mining.mine_hard_negatives` that pick negatives."""

    range_min: int = 0
    range_max: int = 50
    num_negatives: int = 5
    margin: float | None = None
    max_score_ratio: float | None = None
    sampling: Sampling = "top"
    seed: int = 0
    rescore_margin: float = 0.0
    batch_size: int | None = None

    @property
    def scored(self) -> bool:
        """Whether the positives must be scored (a score filter is set)."""
        return self.margin is not None or self.max_score_ratio is not None


@dataclass
class MinedLine:
    """One input line's result: its output record (``None`` when it got no negative) and how many it got."""

    line_number: int
    record: dict[str, Any]
    negatives: int


def validate_query_line(record: Any) -> dict[str, Any]:
    """A mining input line, checked: ``query`` and a non-empty ``pos`` (prompts kept; no ``scores``)."""
    if isinstance(record, dict) and record.get("pos") in (None, []) and isinstance(record.get("query"), str):
        raise ValueError("this query has no positive ('pos' is missing or empty); mining needs at least one")
    example = validate_example(record)
    if example["scores"]:
        raise ValueError("a scored line ('scores') has no positives to mine against; give 'query' and 'pos'")
    return dict(example)


def norm(text: str) -> str:
    """Whitespace-normalized text: what dedup and the positive check compare."""
    return " ".join(text.split())


def _passes(score: float, weakest: float, margin: float | None, max_score_ratio: float | None) -> bool:
    if margin is not None and not score < weakest - margin:
        return False
    return max_score_ratio is None or score <= max_score_ratio * weakest


def _rescore(
    reranker: BaseReranker, query: str, pos: list[str], candidates: list[str], margin: float, batch_size: int | None
) -> list[str]:
    scores = reranker.compute_score([(query, d) for d in [*pos, *candidates]], batch_size=batch_size)
    weakest = min(scores[: len(pos)])
    return [d for d, s in zip(candidates, scores[len(pos) :]) if s < weakest - margin]


def mine_batch(
    index: Index,
    scorer: BaseReranker | None,
    reranker: BaseReranker | None,
    batch: list[tuple[int, dict[str, Any]]],
    corpus_size: int,
    rules: MiningRules,
) -> list[MinedLine]:
    """Mine the ``(line number, validated line)`` pairs of ``batch`` against ``index`` (``corpus_size``
    documents); ``scorer`` scores the positives for the score filters, ``reranker`` rescores survivors."""
    queries = [line["query"] for _, line in batch]
    most_pos = max(len(line["pos"]) for _, line in batch)
    k = min(corpus_size, rules.range_max + most_pos) if corpus_size else 1
    hits = index.search_many(queries, k) if corpus_size else [[] for _ in batch]
    scored = scorer is not None and rules.scored
    pos_pairs = [(line["query"], p) for _, line in batch for p in line["pos"]]
    pos_scores = iter(scorer.compute_score(pos_pairs, batch_size=rules.batch_size) if scored else [])
    mined = []
    for (line_number, line), found in zip(batch, hits):
        weakest = min(next(pos_scores) for _ in line["pos"]) if scored else 0.0
        positives = {norm(p) for p in line["pos"]}
        ranked = [h for h in found if norm(h.text) not in positives][rules.range_min : rules.range_max]
        kept = [h.text for h in ranked if _passes(h.score, weakest, rules.margin, rules.max_score_ratio)]
        if reranker is not None and kept:
            kept = _rescore(reranker, line["query"], line["pos"], kept, rules.rescore_margin, rules.batch_size)
        if rules.sampling == "random" and len(kept) > rules.num_negatives:
            rng = row_rng(rules.seed, 0, line_number)
            picked = sorted(rng.sample(range(len(kept)), rules.num_negatives))
            kept = [kept[i] for i in picked]
        neg = kept[: rules.num_negatives]
        record = {"query": line["query"], "pos": line["pos"], "neg": neg}
        for key in ("prompt_for_query", "prompt_for_passage"):
            if line[key] is not None:
                record[key] = line[key]
        mined.append(MinedLine(line_number, record, len(neg)))
    return mined
