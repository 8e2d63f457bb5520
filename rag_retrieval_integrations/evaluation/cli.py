"""``rag-retrieval-eval``: measure rerankers on a reranking set, or retrievers on a corpus.

    rag-retrieval-eval rerank --data dev.tsv --model ./before --compare ./after \\
        [--model-type cross-encoder [auto ...]] [--option max_length=256] [--output-dir eval/]
    rag-retrieval-eval retrieval --data squad.json --model ./embedder --compare ./colbert \\
        [--retriever auto|embedding|colbert|mrl|bm25|hybrid] [--option shortlist_factor=20] [--top-k 100] \\
        [--split test] [--max-queries 1000] [--index DIR] [--output-dir eval/]
    rag-retrieval-eval retrieval --data squad.json --model bm25 --compare ./embedder   # BM25 needs no checkpoint
    rag-retrieval-eval retrieval --data squad.json --model ./embedder --retriever hybrid \\
        [--option fusion=zscore] [--option "weights={bm25: 1, dense: 1}"] [--option stemmer=english]
    rag-retrieval-eval pipeline --data beir/ (--first-stage ./embedder | --first-stage bm25 | --run-file bm25.trec) \\
        --model ./reranker --compare ./reranker2 [--rerank-depth 100] [--retriever auto|...|hybrid] \\
        [--first-stage-option max_length=256] [--option max_length=512] [--model-type ...] [--output-dir eval/]

Each prints a Markdown table and writes ``eval_<command>.json`` and ``eval_<command>.md`` to
``--output-dir``. Errors in the input (a missing model or file, a malformed line, a set where
no query has a relevant candidate, unreadable weights, an ``--output-dir`` that is a file) end the command
with a one-line message, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import yaml

from .metrics import PIPELINE_METRICS, RERANK_METRICS, RETRIEVAL_METRICS


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option takes key=value, got {pair!r}")
        options[key.replace("-", "_")] = yaml.safe_load(value)
    return options


def table(rows: list[dict[str, Any]], metrics: list[str], columns: tuple[str, ...] = ()) -> str:
    """A Markdown table: one row per model, ``columns`` (text), ``metrics`` (4 decimals), the query
    count, and what truncation cut of the documents (see ``core/truncation.py``)."""
    head = ["model", *columns, *metrics, "queries", "truncated"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in rows:
        cells = [str(row["model"]), *(str(row.get(c, "-")) for c in columns), *(f"{row[m]:.4f}" for m in metrics)]
        lines.append("| " + " | ".join([*cells, str(row["queries"]), str(row.get("truncated", "-"))]) + " |")
    return "\n".join(lines)


@contextmanager
def _loading(model: str, errors: tuple[type[BaseException], ...] = (OSError,)) -> Iterator[None]:
    """Turn a failure to read ``model``'s files (a corrupt ``model.safetensors``, ``errors``) into a
    ``ValueError`` naming the model path, which :func:`main` reports in one line."""
    from safetensors import SafetensorError

    try:
        yield
    except (SafetensorError, *errors) as e:
        # SafetensorError is no ValueError and its message names no file: without this, a traceback
        if isinstance(e, SafetensorError) or model not in str(e):
            raise ValueError(f"cannot load the model {model!r}: {e}") from None
        raise


def check_output_dir(path: Path | None) -> None:
    """Raise ``ValueError`` if ``path`` cannot become a writable folder, before the models are
    loaded and run (rather than once their scores are in)."""
    if path is None:
        return
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        where = "is an existing file" if existing == path else f"cannot be created: {str(existing)!r} is a file"
        raise ValueError(f"--output-dir {str(path)!r} {where}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output-dir {str(path)!r} cannot be written: {str(existing)!r} is not writable")


def run_rerank(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``rag-retrieval-eval rerank``: one row of metrics per model, on the set of ``--data``."""
    from rag_retrieval_integrations import Reranker

    from .rerank_data import load_rerank_set
    from .rerank_eval import evaluate_reranker

    options = _options(args.option)
    options.setdefault("show_progress_bar", not args.quiet)
    models = [args.model, *args.compare]
    model_types = _model_types(args.model_type, models)
    data = load_rerank_set(args.data)
    rows = []
    for model, model_type in zip(models, model_types):
        with _loading(model):
            ranker = Reranker(model, model_type=model_type, **options)
        print(f"scoring {len(data)} queries with {model} ({ranker.model_type})", file=sys.stderr, flush=True)
        scores = evaluate_reranker(ranker, data, tuple(args.metrics))
        truncated = ranker.truncation_totals.summary(ranker.max_length)
        rows.append({"model": model, "family": ranker.model_type, **scores, "truncated": truncated})
    return rows


def _model_types(given: list[str] | None, models: list[str]) -> list[str | None]:
    """One ``model_type`` per model from ``--model-type``: none given, each detected; one value, for
    ``--model`` alone (the ``--compare`` models are detected: one family forced on all of them
    scored a cross-encoder as a bi-encoder); else one value per model, ``auto`` to detect that one."""
    if not given:
        return [None] * len(models)
    if len(given) == 1:
        return [None if given[0] == "auto" else given[0]] + [None] * (len(models) - 1)
    if len(given) != len(models):
        raise ValueError(
            f"--model-type takes one value (for --model; the --compare models are detected) or one per model "
            f"({len(models)}: --model then each --compare, 'auto' to detect one), got {len(given)}: {given}"
        )
    return [None if value == "auto" else value for value in given]


def _load_set(args: argparse.Namespace) -> Any:
    """The retrieval set of ``--data`` (``--split``, ``--max-queries``), its size told on stderr."""
    from .retrieval_data import load_retrieval_set

    data = load_retrieval_set(args.data, split=args.split, max_queries=args.max_queries)
    left_out = [
        f"{n} {why} left out"
        for n, why in (
            (data.queries_without_relevant, "without a relevant document"),
            (data.queries_cut, "past --max-queries"),
        )
        if n
    ]
    print(
        f"{data.source}: {len(data.doc_ids)} documents, {len(data)} queries"
        + (f" ({'; '.join(left_out)})" if left_out else ""),
        file=sys.stderr,
        flush=True,
    )
    return data


def run_retrieval(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``rag-retrieval-eval retrieval``: one row of metrics per model, on the set of ``--data``."""
    from .retrieval_eval import evaluate_retriever, resolve_retriever, run_depth

    depth = run_depth(args.top_k, args.metrics)  # a bad --top-k or metric fails before any loading
    models = [args.model, *args.compare]
    if args.index is not None and len(models) > 1:
        raise ValueError("--index holds the index of one model; leave out --compare (or run once per model)")
    data = _load_set(args)
    options = _options(args.option)
    rows = []
    for model in models:
        kind = resolve_retriever(model, args.retriever, revision=options.get("revision"), token=options.get("token"))
        print(
            f"retrieving the top {min(depth, len(data.doc_ids))} documents with {model} ({kind} retriever)",
            file=sys.stderr,
            flush=True,
        )
        # the model is loaded inside, next to --index reads and writes: only a weights error names the model
        with _loading(model, errors=()):
            scores = evaluate_retriever(
                model,
                data,
                retriever=kind,
                metrics=tuple(args.metrics),
                top_k=depth,
                options=options,
                show_progress=not args.quiet,
                index_dir=args.index,
            )
        rows.append({"model": model, **scores})
    return rows


def run_pipeline(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``rag-retrieval-eval pipeline``: the first stage's row, then one row per reranker, all on
    the same candidates (retrieved or read once)."""
    from rag_retrieval_integrations import Reranker

    from .pipeline_eval import check_rerank_depth, evaluate_pipeline

    try:
        args.rerank_depth = int(args.rerank_depth)
    except ValueError:
        raise ValueError(f"--rerank-depth must be a whole number >= 1, got {args.rerank_depth!r}") from None
    depth = check_rerank_depth(args.rerank_depth, args.metrics)  # before any loading
    first_options = _options(args.first_stage_option)
    options = _options(args.option)  # a malformed --option fails before the first stage runs
    options.setdefault("show_progress_bar", not args.quiet)
    models = [args.model, *args.compare]
    model_types = _model_types(args.model_type, models)
    data = _load_set(args)

    def rerankers() -> Iterator[tuple[str, Any]]:  # loaded one at a time, once the candidates are in
        for model, model_type in zip(models, model_types):
            with _loading(model):
                ranker = Reranker(model, model_type=model_type, **options)
            print(f"reranking the candidates with {model} ({ranker.model_type})", file=sys.stderr, flush=True)
            yield model, ranker

    if args.run_file is not None:
        print(f"reranking the top {depth} candidates per query of {args.run_file}", file=sys.stderr, flush=True)
    else:
        print(
            f"retrieving the top {min(depth, len(data.doc_ids))} documents with {args.first_stage}, once",
            file=sys.stderr,
            flush=True,
        )
    # a first stage's unreadable weights name it; a run file's errors name the file themselves
    with _loading(args.first_stage, errors=()) if args.first_stage is not None else nullcontext():
        return evaluate_pipeline(
            data,
            rerankers(),
            first_stage=args.first_stage,
            run_file=args.run_file,
            retriever=args.retriever,
            rerank_depth=depth,
            metrics=tuple(args.metrics),
            first_stage_options=first_options,
            show_progress=not args.quiet,
            index_dir=args.index,
        )


def _common_arguments(parser: argparse.ArgumentParser, data_help: str, metrics: tuple[str, ...]) -> None:
    parser.add_argument("--data", required=True, help=data_help)
    parser.add_argument("--model", required=True, help="checkpoint folder or hub id (retrieval: or bm25)")
    parser.add_argument("--compare", nargs="*", default=[], help="more models, evaluated on the same set")
    parser.add_argument("--option", action="append", default=[], help="option key=value (repeatable)")
    parser.add_argument("--metrics", nargs="+", default=list(metrics), help="ir_measures names (MRR for RR)")
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


MODEL_TYPE_HELP = (
    "the family of --model (the --compare models are detected), or one per model in order, 'auto' to detect "
    "one (default: each detected from its checkpoint)"
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _retriever_argument(parser: argparse.ArgumentParser, retrievers: tuple[str, ...]) -> None:
    parser.add_argument(
        "--retriever",
        choices=retrievers,
        default="auto",
        help="auto: colbert for a ColBERT checkpoint, bm25 for the model 'bm25', else embedding (exhaustive); "
        "hybrid: BM25 fused with the model's auto retriever",
    )


def _set_arguments(parser: argparse.ArgumentParser) -> None:
    """The retrieval set's and the index's flags, shared by ``retrieval`` and ``pipeline``."""
    parser.add_argument("--split", default="test", help="which BEIR qrels/<split>.tsv to evaluate on")
    parser.add_argument("--max-queries", type=_positive_int, default=None, help="evaluate the first N queries only")
    parser.add_argument(
        "--index",
        type=Path,
        default=None,
        help="load the index from this folder if it holds one, else save the built one there",
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``rag-retrieval-eval``; returns 0, or exits with status 2 on bad input."""
    from .retrieval_eval import RETRIEVERS

    parser = argparse.ArgumentParser(
        prog="rag-retrieval-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rerank = sub.add_parser("rerank", help="MAP, MRR@10, nDCG@10 of rerankers on a reranking set")
    _common_arguments(rerank, 'JSONL {"query", "candidates": [{"content", "label"}]} or WikiQA .tsv', RERANK_METRICS)
    rerank.add_argument("--model-type", nargs="+", default=None, help=MODEL_TYPE_HELP)
    retrieval = sub.add_parser("retrieval", help="nDCG@10, MRR@10, R@10, R@100 of retrievers over a corpus")
    _common_arguments(
        retrieval, "BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or SQuAD v1.1 .json", RETRIEVAL_METRICS
    )
    _retriever_argument(retrieval, RETRIEVERS)
    retrieval.add_argument(
        "--top-k",
        type=_positive_int,
        default=None,
        help="documents retrieved per query (default: the deepest metric cutoff)",
    )
    _set_arguments(retrieval)
    pipeline = sub.add_parser("pipeline", help="a first stage's top N reranked: its recall@N, the final nDCG@10 ...")
    _common_arguments(
        pipeline, "BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or SQuAD v1.1 .json", PIPELINE_METRICS
    )
    first = pipeline.add_mutually_exclusive_group(required=True)
    first.add_argument("--first-stage", default=None, help="embedding or ColBERT checkpoint that retrieves, or bm25")
    first.add_argument(
        "--run-file", type=Path, default=None, help="TREC run file of candidates (qid Q0 docid rank score tag)"
    )
    pipeline.add_argument(
        "--rerank-depth", default="100", help="candidates per query reranked; the final run holds only those"
    )
    _retriever_argument(pipeline, RETRIEVERS)
    pipeline.add_argument(
        "--first-stage-option", action="append", default=[], help="first stage's index or model option key=value"
    )
    pipeline.add_argument("--model-type", nargs="+", default=None, help=MODEL_TYPE_HELP)
    _set_arguments(pipeline)
    args = parser.parse_args(argv)
    runners = {
        "rerank": (run_rerank, ("family",)),
        "retrieval": (run_retrieval, ("retriever",)),
        "pipeline": (run_pipeline, ("first_stage", "family")),
    }
    run, columns = runners[args.command]
    try:
        check_output_dir(args.output_dir)
        rows = run(args)
    except (FileNotFoundError, ValueError, TypeError, OSError, ImportError) as e:
        # a user's input error: one line, no traceback from deep inside the stack
        parser.exit(2, f"rag-retrieval-eval: error: {e}\n")
    metrics = args.metrics
    if args.command == "pipeline":
        metrics = [f"first-stage R@{args.rerank_depth}", *metrics]
    markdown = table(rows, metrics, columns)
    print(markdown)
    if args.output_dir is not None:
        try:
            args.output_dir.mkdir(parents=True, exist_ok=True)
            (args.output_dir / f"eval_{args.command}.json").write_text(json.dumps(rows, indent=2))
            (args.output_dir / f"eval_{args.command}.md").write_text(markdown + "\n")
        except OSError as e:  # the folder changed since the check (or a result name is taken by a folder)
            parser.exit(2, f"rag-retrieval-eval: error: cannot write the results to {str(args.output_dir)!r}: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
