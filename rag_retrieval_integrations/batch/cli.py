"""``rag-retrieval-batch``: the corpus jobs from the command line.

    rag-retrieval-batch encode CORPUS OUT --model PATH [--engine ray --workers 4] [--format parquet]
    rag-retrieval-batch score PAIRS OUT --model PATH [--model-type llm] [--max-length 512] [--engine ray]

``CORPUS`` rows are ``{"text", "id"?, "metadata"?}``; ``PAIRS`` rows ``{"query", "document"}``,
``{"query", "documents": [...]}`` or ``{"query", "hits": [{"content"}, ...]}``; either a JSONL or Parquet file
or a folder of them. ``OUT`` is the job folder (parts + ``job.json``): run the same command again after a kill
and only the unfinished shards run. ``--engine ray`` runs on Ray Data (a local cluster, or ``RAY_ADDRESS``).
A bad input or flag ends with a one-line message, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .engine import ENGINES, run_job
from .shards import FORMATS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag-retrieval-batch", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, what in (
        ("encode", "encode documents as an index stores them (an embedding or ColBERT model)"),
        ("score", "score (query, document) pairs with any Reranker"),
    ):
        sub = commands.add_parser(name, help=what)
        sub.add_argument("input", help="a JSONL or Parquet file, or a folder of them")
        sub.add_argument("output", help="the job folder (an existing one of the same job is continued)")
        sub.add_argument("--model", required=True, help="checkpoint path or hub id")
        sub.add_argument("--model-type", help="the model family (default: detected from the checkpoint)")
        sub.add_argument("--max-length", type=int, help="tokens per input (default: the model's)")
        sub.add_argument("--batch-size", type=int, help="inputs per forward pass")
        sub.add_argument("--engine", choices=ENGINES, default="local", help="default: local")
        sub.add_argument("--workers", type=int, help="ray: model actors (default: one per CPU, or per GPU)")
        sub.add_argument("--gpus-per-worker", type=float, help="ray: GPUs per actor (default: 1 where there are GPUs)")
        sub.add_argument("--rows-per-shard", type=int, default=1000, help="rows per shard (default 1000)")
        sub.add_argument("--format", choices=FORMATS, default="jsonl", help="of the parts")
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .jobs import EncodeJob, ScoreJob  # the models' imports, after the flags are checked

    options: dict[str, Any] = {} if args.max_length is None else {"max_length": args.max_length}
    if args.command == "encode":
        spec: Any = EncodeJob(args.model, args.model_type, options, args.batch_size)
    else:
        spec = ScoreJob(args.model, args.model_type, options, args.batch_size or 32)
    try:
        result = run_job(
            spec,
            args.input,
            args.output,
            engine=args.engine,
            rows_per_shard=args.rows_per_shard,
            output_format=args.format,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            show_progress_bar=not args.quiet,
        )
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"rag-retrieval-batch {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    done = result.shards - len(result.ran)
    print(
        f"{result.output}: {result.shards} shards ({len(result.ran)} run now, {done} finished before), "
        f"{result.rows} rows computed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
