"""``rag-retrieval-index``: index folders from the command line.

    rag-retrieval-index convert SRC DST [--quantization int8|binary|none] [--on-disk] [--vector-dtype float32]
    rag-retrieval-index convert SRC --url http://qdrant:6333 --collection docs [--shards 6 --replicas 2]

``convert`` copies a saved ``MRLIndex`` or ``ColBERTIndex`` (the FAISS engine) into the Qdrant engine:
an embedded Qdrant Edge index at ``DST``, or a collection on a Qdrant server (``--url``; the API key from
the environment variable ``QDRANT_API_KEY``, never a flag), whose manifest then goes to ``DST`` if given.
Nothing is encoded again. A bad folder or flag ends the command with a one-line message, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

API_KEY_ENV = "QDRANT_API_KEY"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag-retrieval-index", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="copy a FAISS-engine index into the Qdrant engine")
    convert.add_argument("source", help="the folder of a saved MRLIndex or ColBERTIndex")
    convert.add_argument("target", nargs="?", help="the new index folder (with --url: where the manifest goes)")
    convert.add_argument("--url", help="a Qdrant server or cluster (default: embedded Qdrant Edge at TARGET)")
    convert.add_argument("--collection", help="the collection on the server (default: rag-retrieval)")
    convert.add_argument("--shards", type=int, help="the collection's shard number (a cluster)")
    convert.add_argument("--replicas", type=int, help="the collection's replication factor (a cluster)")
    convert.add_argument("--quantization", choices=["int8", "binary", "none"], help="codes of the first pass")
    convert.add_argument("--on-disk", action="store_true", help="keep the original vectors on disk")
    convert.add_argument("--vector-dtype", choices=["float16", "float32"], help="ColBERT token vectors' storage")
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .core.engines.qdrant.convert import convert_index

    options: dict[str, Any] = {"on_disk": args.on_disk}
    if args.quantization is not None:
        options["quantization"] = None if args.quantization == "none" else args.quantization
    if args.vector_dtype is not None:
        options["vector_dtype"] = args.vector_dtype
    if args.url is not None:
        options.update(url=args.url, api_key=os.environ.get(API_KEY_ENV), collection=args.collection)
        options.update({k: v for k, v in (("shards", args.shards), ("replicas", args.replicas)) if v is not None})
    elif args.target is None:
        print("rag-retrieval-index convert: give TARGET (an embedded index folder) or --url", file=sys.stderr)
        return 2
    try:
        index = convert_index(
            args.source, None if args.url else args.target, show_progress_bar=not args.quiet, **options
        )
        if args.url and args.target:
            index.save(args.target)
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"rag-retrieval-index convert: {e}", file=sys.stderr)
        return 2
    print(f"converted {len(index)} documents: {index!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
