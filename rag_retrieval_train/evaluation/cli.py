"""``rag-retrieval-eval rerank``: measure rerankers on a reranking set, side by side.

    rag-retrieval-eval rerank --data dev.tsv --model ./before --compare ./after \\
        [--model-type cross-encoder] [--option max_length=256] [--output-dir eval/]

Prints a Markdown table and writes ``eval_rerank.json`` and ``eval_rerank.md`` to
``--output-dir``. Errors in the input (a missing model or file, a malformed line, a set where
no query has a relevant candidate) end the command with a one-line message, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from .metrics import RERANK_METRICS


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option takes key=value, got {pair!r}")
        options[key.replace("-", "_")] = yaml.safe_load(value)
    return options


def table(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    lines = ["| model | " + " | ".join(metrics) + " | queries |", "|---" * (len(metrics) + 2) + "|"]
    for row in rows:
        values = " | ".join(f"{row[m]:.4f}" for m in metrics)
        lines.append(f"| {row['model']} | {values} | {row['queries']} |")
    return "\n".join(lines)


def run_rerank(args: argparse.Namespace) -> list[dict[str, Any]]:
    from rag_retrieval_integrations import Reranker

    from .rerank_data import load_rerank_set
    from .rerank_eval import evaluate_reranker

    data = load_rerank_set(args.data)
    options = _options(args.option)
    options.setdefault("show_progress_bar", not args.quiet)
    rows = []
    for model in [args.model, *args.compare]:
        ranker = Reranker(model, model_type=args.model_type, **options)
        print(f"scoring {len(data)} queries with {model} ({ranker.model_type})", file=sys.stderr, flush=True)
        rows.append({"model": model, **evaluate_reranker(ranker, data, tuple(args.metrics))})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rag-retrieval-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rerank = sub.add_parser("rerank", help="MAP, MRR@10, nDCG@10 of rerankers on a reranking set")
    rerank.add_argument("--data", required=True, help='JSONL {"query", "candidates": [{"content", "label"}]} or WikiQA .tsv')
    rerank.add_argument("--model", required=True, help="checkpoint folder or hub id")
    rerank.add_argument("--compare", nargs="*", default=[], help="more models, evaluated on the same set")
    rerank.add_argument("--model-type", default=None, help="the family (default: detected from the checkpoint)")
    rerank.add_argument("--option", action="append", default=[], help="Reranker option key=value (repeatable)")
    rerank.add_argument("--metrics", nargs="+", default=list(RERANK_METRICS))
    rerank.add_argument("--output-dir", type=Path, default=None)
    rerank.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        rows = run_rerank(args)
    except (FileNotFoundError, ValueError, TypeError, OSError) as e:
        # a user's input error: one line, no traceback from deep inside the stack
        parser.exit(2, f"rag-retrieval-eval: error: {e}\n")
    markdown = table(rows, args.metrics)
    print(markdown)
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / f"eval_{args.command}.json").write_text(json.dumps(rows, indent=2))
        (args.output_dir / f"eval_{args.command}.md").write_text(markdown + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
