"""``rag-retrieval-serve``: load one model and serve it over HTTP with uvicorn.

    rag-retrieval-serve MODEL [--model-type cross-encoder] [--option max_length=512 ...] \\
        [--device cuda] [--dtype float16] [--host 127.0.0.1] [--port 8000] [--served-model-name NAME] \\
        [--batch-wait-ms 2] [--max-batch-pairs 512] [--max-queue 256] [--max-documents 1000] \\
        [--max-request-bytes 4194304] [--request-timeout-s 60]

The API key, when wanted, comes from the environment variable ``RAG_RETRIEVAL_API_KEY`` (not
a flag: command lines are visible to every user of the machine). A model that cannot be
loaded, or a bad flag, ends the command with a one-line message, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

API_KEY_ENV = "RAG_RETRIEVAL_API_KEY"
TUNING = {  # ServerConfig fields that are flags of the same name
    "batch_wait_ms": "how long the oldest request waits for others to share its score_pairs pass",
    "max_batch_pairs": "the most (query, document) pairs in one score_pairs pass",
    "max_queue": "requests waiting beyond this get 503 + Retry-After",
    "max_documents": "documents per request; more is a 413",
    "max_request_bytes": "request body size; more is a 413",
    "request_timeout_s": "a request not answered by then gets a 504",
}


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["max_length=256", "long_doc=split-max"]`` as keyword options: values read as JSON
    (numbers, ``true``, ``null``), else kept as strings."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option takes key=value, got {pair!r}")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options


def build_parser() -> argparse.ArgumentParser:
    from .limits import ServerConfig

    defaults = ServerConfig(served_model_name="-")
    parser = argparse.ArgumentParser(
        prog="rag-retrieval-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a checkpoint folder or a Hugging Face hub id")
    parser.add_argument("--model-type", default=None, help="the model family (default: detected from the checkpoint)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="an option of Reranker(...)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument(
        "--host", default="127.0.0.1", help="default: loopback only; 0.0.0.0 to listen on every interface"
    )
    parser.add_argument("--port", type=_port, default=8000, help="0 to 65535 (0: any free port)")
    parser.add_argument("--served-model-name", default=None, help="the name clients send as `model` (default: MODEL)")
    for name, help_ in TUNING.items():  # the ServerConfig fields, with its defaults
        default = getattr(defaults, name)
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default, help=help_)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``rag-retrieval-serve``."""
    args = build_parser().parse_args(argv)
    try:
        import uvicorn

        from .. import Reranker
        from .app import create_app
        from .limits import ServerConfig

        config = ServerConfig(
            served_model_name=args.served_model_name or _default_name(args.model),
            api_key=api_key_from_environment(),
            **{name: getattr(args, name) for name in TUNING},
        )
        model = Reranker(
            args.model, args.model_type, device=args.device, dtype=args.dtype, **parse_options(args.option)
        )
    except (ImportError, OSError, ValueError, TypeError) as err:
        print(f"rag-retrieval-serve: error: {err}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(create_app(model, config), host=args.host, port=args.port, log_level=args.log_level)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 65535, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 65535, got {port}")
    return port


def api_key_from_environment() -> str | None:
    """``RAG_RETRIEVAL_API_KEY`` without surrounding whitespace (a key read from a file often ends in a
    newline, which no client sends: every request would be a 401), with a warning when it had some."""
    raw = os.environ.get(API_KEY_ENV)
    if raw is None:
        return None
    key = raw.strip()
    if key != raw:
        print(
            f"rag-retrieval-serve: warning: {API_KEY_ENV} has leading or trailing whitespace (a newline?); "
            "using the key without it",
            file=sys.stderr,
        )
    return key or None


def _default_name(model: str) -> str:
    """A hub id as it is; a local folder by its name (clients see it: the server's paths stay private)."""
    path = Path(model)
    return path.resolve().name if path.exists() else model


if __name__ == "__main__":  # pragma: no cover
    main()
