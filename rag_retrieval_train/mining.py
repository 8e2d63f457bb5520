"""Hard-negative mining: ``rag-retrieval-train mine`` and :func:`mine_hard_negatives`.

Reads the trainers' JSONL (``{"query", "pos": [...]}``), retrieves candidates for each query from a
corpus with an embedding, MRL or ColBERT model through the core indexes (``MRLIndex`` searched
exactly: ``search_dim`` = the full dimension over a flat FAISS index; ``ColBERTIndex`` with exact
MaxSim over every document), and writes the same lines with ``neg`` filled in: what
``rag-retrieval-train embedding`` and ``rag-retrieval-train reranker`` read.

Which candidates become negatives, in this order:

1. **Dedup.** The corpus is deduplicated by whitespace-normalized text; a candidate equal to any positive of the line
   (whitespace-normalized) is never a negative, and is not counted in the ranks.
2. **Rank range.** Of the remaining candidates, ranks ``range_min + 1 .. range_max`` (1-based,
   best first) are considered: ``range_min`` skips the very top, where false negatives gather.
3. **Score filters** against the line's weakest positive (its lowest score by the same model):
   ``margin`` keeps a candidate only if ``score < pos_score - margin`` (absolute), and
   ``max_score_ratio`` only if ``score <= ratio * pos_score`` (relative).
4. **Rescoring** (optional): a second model (any ``Reranker``, typically a cross-encoder) scores
   the query with its positives and the survivors; a candidate is kept only if its score is below
   the weakest positive's minus ``rescore_margin``.
5. **Sampling.** ``"top"`` keeps the best ``num_negatives`` survivors; ``"random"`` draws them
   uniformly (seeded per line by ``seed`` and the line number: reproducible and order-independent).

A line's existing ``neg`` is replaced by the mined one. Its prompts are kept: the embedding trainer
reads them, the reranker trainer does not take them (mine prompt-free lines for it). A line left with
fewer than ``num_negatives`` negatives is still written and counted in the returned
:class:`MiningStats`; a line left with none is not written (``keep_empty`` writes it with ``"neg": []``):
the trainers refuse it as soon as ``train_group_size`` asks for a hard negative.

The CLI sub-command takes argparse options, not a YAML config: it is a one-shot data tool, not a
trainer, so it needs no config dataclass, resume or run folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from rag_retrieval_integrations.batch.engine import ENGINES
from rag_retrieval_integrations.core.indexes.base import Index
from rag_retrieval_integrations.core.models.base import BaseReranker

from .data.corpus import corpus_texts, load_corpus
from .data.jsonl import iter_jsonl
from .mining_job import mine_with_job
from .mining_rules import QUERY_BATCH, MinedLine, MiningRules, mine_batch, norm, validate_query_line

__all__ = ["MiningStats", "load_corpus", "main", "mine_hard_negatives"]

logger = logging.getLogger(__name__)

Sampling = Literal["top", "random"]
RETRIEVERS = ("auto", "bm25", "hybrid")


@dataclass
class MiningStats:
    """What a mining run did: lines read and written, negatives kept, lines left short."""

    lines: int = 0
    corpus_size: int = 0
    negatives: int = 0
    short_lines: list[int] = field(default_factory=list)
    """Line numbers that got fewer than ``num_negatives`` negatives (the empty ones included)."""
    empty_lines: list[int] = field(default_factory=list)
    """Line numbers that got no negative at all: left out of the output unless ``keep_empty``."""
    output: str | None = None


def _check_output(data: str | os.PathLike, output: str | os.PathLike | None) -> None:
    """Refuse an output that would overwrite the input or is a folder, before any work."""
    if output is None:
        return
    target = Path(output)
    if target.is_dir():
        raise ValueError(f"output {os.fspath(output)!r} is a folder; give the path of a JSONL file to write")
    if target.exists() and Path(data).exists() and os.path.samefile(target, data):
        raise ValueError(
            f"output {os.fspath(output)!r} is the input file: lines without negatives would be lost from its only "
            "copy; write to another file"
        )


def _build_index(model: Any, retriever: str, batch_size: int | None, show_progress_bar: bool | None) -> Index:
    """An exact index over ``model``: ``MRLIndex`` (flat, full dims) or ``ColBERTIndex`` (exhaustive);
    ``BM25Index`` for the model ``"bm25"``; with ``retriever="hybrid"``, BM25 and the model's index fused by RRF."""
    from rag_retrieval_integrations.core import BM25Index, ColBERTIndex, HybridIndex, MRLIndex
    from rag_retrieval_integrations.core.indexes.bm25 import names_bm25
    from rag_retrieval_integrations.core.models.colbert import ColBERTReranker
    from rag_retrieval_integrations.core.models.embedding import EmbeddingModel

    if retriever not in RETRIEVERS:
        raise ValueError(f"retriever must be one of {list(RETRIEVERS)}, got {retriever!r}")
    # BM25 mines lexical near-misses: the negatives a dense model gets wrong
    if names_bm25(model) or retriever == "bm25":
        if not names_bm25(model) or retriever == "hybrid":
            raise ValueError(
                f"BM25 mining takes the model 'bm25' (no checkpoint); for BM25 fused with {model!r} "
                "use retriever='hybrid'"
            )
        return BM25Index()
    if retriever == "hybrid":
        return HybridIndex({"bm25": BM25Index(), "dense": _build_index(model, "auto", batch_size, show_progress_bar)})

    if not isinstance(model, BaseReranker):
        if not isinstance(model, (str, os.PathLike)):
            raise TypeError(f"model must be a path, a hub id or a loaded Reranker, got {type(model).__name__}")
        from rag_retrieval_integrations import Reranker

        model = Reranker(model)
    options = {"batch_size": batch_size, "show_progress_bar": show_progress_bar}
    if isinstance(model, ColBERTReranker):
        return ColBERTIndex(model, faiss_index="none", **options)
    if isinstance(model, EmbeddingModel):
        return MRLIndex(model, search_dim=model.embedding_dim, index_type="flat", **options)
    raise TypeError(
        f"mining retrieves with an embedding, MRL or ColBERT model; got a {model.model_type!r} model "
        "(use it as --rescore-model instead)"
    )


def _load_reranker(model: Any) -> BaseReranker:
    if isinstance(model, BaseReranker):
        return model
    from rag_retrieval_integrations import Reranker

    return Reranker(model)


def _check_options(range_min: int, range_max: int, num_negatives: int, sampling: str) -> None:
    for name, value, low in (
        ("range_min", range_min, 0),
        ("range_max", range_max, 1),
        ("num_negatives", num_negatives, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if range_max <= range_min:
        raise ValueError(f"range_max ({range_max}) must be greater than range_min ({range_min})")
    if sampling not in ("top", "random"):
        raise ValueError(f"sampling must be 'top' or 'random', got {sampling!r}")


def mine_hard_negatives(
    data: str | os.PathLike,
    model: Any,
    *,
    output: str | os.PathLike | None = None,
    corpus: str | os.PathLike | Sequence[str] | None = None,
    range_min: int = 0,
    range_max: int = 50,
    num_negatives: int = 5,
    margin: float | None = None,
    max_score_ratio: float | None = None,
    sampling: Sampling = "top",
    seed: int = 0,
    rescore_model: Any = None,
    rescore_margin: float = 0.0,
    keep_empty: bool = False,
    batch_size: int | None = None,
    show_progress_bar: bool | None = None,
    retriever: str = "auto",
    engine: str = "local",
    workers: int | None = None,
    work_dir: str | os.PathLike | None = None,
    rows_per_shard: int = 1000,
) -> tuple[list[dict[str, Any]], MiningStats]:
    """Mine hard negatives for every line of the JSONL file ``data`` (see the module doc for the rules).

    Args:
        data: the trainers' JSONL: ``query`` and a non-empty ``pos`` per line.
        model: the retriever: an embedding (MRL) or ColBERT checkpoint (path or hub id) or a loaded one,
            or ``"bm25"`` for BM25 (``BM25Index``, English stopwords and stemmer).
        output: where to write the mined JSONL (default: nothing is written; the lines are returned).
        corpus: documents to mine from: a corpus file (see :func:`load_corpus`) or a list of texts;
            default: every positive of ``data``.
        range_min, range_max: consider candidate ranks ``range_min + 1 .. range_max`` (positives not counted).
        num_negatives: negatives per line (at most).
        margin: keep a candidate only if its score is below the weakest positive's minus ``margin``.
        max_score_ratio: keep a candidate only if its score is at most ``ratio`` times the weakest positive's.
        sampling: ``"top"`` (the best survivors) or ``"random"`` (a seeded draw among them).
        seed: the random draw's seed.
        rescore_model: any ``Reranker`` (path or loaded) that filters the survivors: a candidate is
            kept only if it scores below the weakest positive minus ``rescore_margin`` by this model.
        keep_empty: also write the lines left with no negative at all (``"neg": []``). By default they
            are left out (and listed in ``MiningStats.empty_lines``), as sentence-transformers' miner
            does: a trainer with ``train_group_size`` > 1 refuses a line without ``neg``.
        batch_size, show_progress_bar: passed to the index's encoding.
        retriever: ``"auto"`` (the model's own index), ``"bm25"`` (with the model ``"bm25"``) or
            ``"hybrid"`` (BM25 and the model's index, fused by reciprocal rank). BM25 and fused scores
            do not compare with a positive's score by another model: ``margin`` and ``max_score_ratio``
            need a model's own scores, so they are refused there; filter false negatives with
            ``rescore_model`` instead.
        engine: ``"local"`` (this process) or ``"ray"``: the corpus encoded and the lines mined as batch
            jobs on Ray Data (:mod:`rag_retrieval_train.mining_job`; the same lines; ``model`` and
            ``rescore_model`` given as paths). ``workers``: Ray model actors (default: one per CPU).
        work_dir: the resumable jobs' folder of a batch engine (default ``<output>.work``, removed once
            the output is written; a given one is kept).
        rows_per_shard: query lines per shard of the batch engine (its unit of resumption).

    Returns:
        the output lines (``query``, ``pos``, ``neg`` and the input's prompts) and :class:`MiningStats`.
    """
    _check_options(range_min, range_max, num_negatives, sampling)
    for name, value in (("margin", margin), ("max_score_ratio", max_score_ratio), ("rescore_margin", rescore_margin)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not isfinite(value)
        ):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    _check_output(data, output)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    lines = list(iter_jsonl(data, validate_query_line))
    texts = [p for _, line in lines for p in line["pos"]] if corpus is None else corpus_texts(corpus)
    # dedup by normalized text (first occurrence kept, in order): each positive then matches at most
    # one document, so range_max + len(pos) hits always hold range_max candidates
    unique: dict[str, str] = {}
    for text in texts:
        unique.setdefault(norm(text), text)
    texts = list(unique.values())
    index = _build_index(model, retriever, batch_size, show_progress_bar)
    scorer = index.model  # scores the positives for the margin filters (BM25 and hybrid have none)
    if scorer is None and (margin is not None or max_score_ratio is not None):
        raise ValueError(
            "margin and max_score_ratio compare a candidate with the positive's score by the same model; BM25 and "
            "hybrid rankings have none: filter false negatives with rescore_model (a cross-encoder) instead"
        )
    rules = MiningRules(
        range_min, range_max, num_negatives, margin, max_score_ratio, sampling, seed, rescore_margin, batch_size
    )
    if engine == "local":
        mined = _mine_here(index, texts, rules, rescore_model, lines, show_progress_bar)
    else:
        default_work = f"{os.fspath(output or data)}.work"
        mined = mine_with_job(
            data,
            index,
            texts,
            model=model,
            retriever=retriever,
            rules=rules,
            rescore_model=rescore_model,
            engine=engine,
            work_dir=work_dir or default_work,
            workers=workers,
            rows_per_shard=rows_per_shard,
            show_progress_bar=show_progress_bar is not False,
        )
    stats = MiningStats(lines=len(lines), corpus_size=len(texts), output=None if output is None else str(output))
    results: list[dict[str, Any]] = []
    for line in mined:
        if line.negatives < num_negatives:
            stats.short_lines.append(line.line_number)
        if not line.negatives:
            stats.empty_lines.append(line.line_number)
            if not keep_empty:
                continue
        stats.negatives += line.negatives
        results.append(line.record)
    if output is not None:
        _write_jsonl(output, results)
    if engine != "local" and work_dir is None:  # the default work folder, once its result is written
        shutil.rmtree(default_work, ignore_errors=True)
    if stats.short_lines:
        logger.warning(
            "%d of %d lines got fewer than %d negatives (e.g. line %d): widen --range-max or relax the filters",
            len(stats.short_lines),
            stats.lines,
            num_negatives,
            stats.short_lines[0],
        )
    if stats.empty_lines:
        logger.warning(
            "%d of %d lines got no negative at all (e.g. line %d) and %s",
            len(stats.empty_lines),
            stats.lines,
            stats.empty_lines[0],
            "are written with 'neg': []" if keep_empty else "are left out of the output (keep them with --keep-empty)",
        )
    return results, stats


def _mine_here(
    index: Index,
    texts: list[str],
    rules: MiningRules,
    rescore_model: Any,
    lines: list[tuple[int, dict[str, Any]]],
    show_progress_bar: bool | None,
) -> list[MinedLine]:
    """The single-process path: the corpus encoded into ``index`` here, the lines mined a batch at a time."""
    index.add(texts, ids=[str(i) for i in range(len(texts))])
    reranker = None if rescore_model is None else _load_reranker(rescore_model)
    mined: list[MinedLine] = []
    with tqdm(total=len(lines), desc="Mining", unit="query", disable=show_progress_bar is False) as progress:
        for start in range(0, len(lines), QUERY_BATCH):
            batch = lines[start : start + QUERY_BATCH]
            mined += mine_batch(index, index.model, reranker, batch, len(texts), rules)
            progress.update(len(batch))
    return mined


def _write_jsonl(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def build_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``rag-retrieval-train mine`` options (argparse: a data tool has no YAML config)."""
    p = parser_class(
        prog="rag-retrieval-train mine",
        description="Mine hard negatives for the embedding and reranker trainers' JSONL (query + pos -> + neg).",
    )
    p.add_argument("--data", required=True, help="input JSONL: query and a non-empty pos list per line")
    p.add_argument(
        "--model", required=True, help="retriever: an embedding/MRL or ColBERT checkpoint or hub id, or bm25"
    )
    p.add_argument(
        "--retriever",
        choices=RETRIEVERS,
        default="auto",
        help="auto: the model's own index (bm25 for the model bm25); hybrid: BM25 fused with the model's (RRF)",
    )
    p.add_argument("--output", required=True, help="output JSONL with neg filled in")
    p.add_argument(
        "--corpus", help="documents to mine from: JSONL {'text': ...} or one per line (default: all positives)"
    )
    p.add_argument("--range-min", type=int, default=0, help="skip the top R candidates (default 0)")
    p.add_argument("--range-max", type=int, default=50, help="consider candidates up to this rank (default 50)")
    p.add_argument("--num-negatives", type=int, default=5, help="negatives per line (default 5)")
    p.add_argument("--margin", type=float, help="keep a candidate only if score < weakest positive's score - MARGIN")
    p.add_argument(
        "--max-score-ratio", type=float, help="keep a candidate only if score <= RATIO * weakest positive's score"
    )
    p.add_argument("--sampling", choices=("top", "random"), default="top", help="which survivors to keep (default top)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sampling random (default 0)")
    p.add_argument("--rescore-model", help="any Reranker checkpoint that filters candidates (e.g. a cross-encoder)")
    p.add_argument(
        "--keep-empty",
        action="store_true",
        help="also write lines that got no negative (neg: []); by default they are left out",
    )
    p.add_argument("--rescore-margin", type=float, default=0.0, help="margin of the --rescore-model filter (default 0)")
    p.add_argument("--batch-size", type=int, help="encoding batch size")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this process; ray: encode and mine as resumable batch jobs on Ray Data (RAY_ADDRESS for a cluster)",
    )
    p.add_argument("--workers", type=int, help="Ray model actors (default: one per CPU of the cluster)")
    p.add_argument("--work-dir", help="the batch jobs' folder (default: OUTPUT.work, removed when done)")
    p.add_argument("--rows-per-shard", type=int, default=1000, help="query lines per batch-job shard (default 1000)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error in the input")
    return p


def main(argv: list[str]) -> int:
    """``rag-retrieval-train mine ...``: 0 on success; an error in the input exits 2 with one line (as the trainers)."""
    from .cli import PROG, USER_ERRORS, _one_line, _Parser

    parser = build_parser(_Parser)
    args = parser.parse_args(argv)
    options = vars(args)  # every other option's dest is a keyword of mine_hard_negatives
    debug, hide_progress = options.pop("debug"), options.pop("no_progress")
    try:
        _, stats = mine_hard_negatives(
            options.pop("data"), options.pop("model"), show_progress_bar=False if hide_progress else None, **options
        )
    except USER_ERRORS as e:
        if debug:
            raise
        parser.exit(2, f"{PROG} mine: error: {_one_line(e) or type(e).__name__}\n")
    written = stats.lines - (0 if args.keep_empty else len(stats.empty_lines))
    print(
        f"wrote {written} lines, {stats.negatives} negatives from a corpus of {stats.corpus_size} to {stats.output}"
        + (f"; {len(stats.short_lines)} lines got fewer than {args.num_negatives}" if stats.short_lines else "")
    )
    return 0
