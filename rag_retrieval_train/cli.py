"""``rag-retrieval-train <trainer> --config cfg.yaml [--key value ...] [--debug]``.

Flags override the YAML file; unknown keys are errors listing the valid ones; ``<trainer> --help``
lists that trainer's keys (types, defaults, descriptions), ``--list-keys`` prints them as YAML. Also runs as
``python -m rag_retrieval_train``. An error in the user's input (a config key or value, the YAML
file, a data line, a missing model or file) ends the command with one line on stderr naming the
key or ``file:line``, exit status 2, as ``rag-retrieval-eval`` does; ``--debug`` shows its full
traceback instead. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from typing import NoReturn

import yaml

from .config import build_config, load_yaml, parse_flags
from .registry import TOOLS, TRAINERS, load_trainer

PROG = "rag-retrieval-train"

# Errors in the user's input: ours (ConfigError, DataFormatError and the core layer's checkpoint
# errors subclass ValueError or FileNotFoundError) and what validation raises. OSError covers a
# missing file or folder, and transformers' "can't load this checkpoint".
# ImportError: a missing extra (engine ray without rag-retrieval[ray]) is said in one line naming it
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, ImportError, yaml.YAMLError)


class _Parser(argparse.ArgumentParser):
    """argparse's own errors (a bad sub-command, a missing value) on one line too, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see --help)\n")


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    """Run ``rag-retrieval-train``; returns 0, or exits with status 2 on an error in the user's input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in TOOLS:
        return importlib.import_module(TOOLS[argv[0]]).main(argv[1:])
    if argv and argv[0] in TRAINERS and any(a in ("-h", "--help") for a in argv[1:]):
        from .keys_doc import trainer_help

        sys.stdout.write(trainer_help(PROG, argv[0], load_trainer(argv[0])[0]))
        return 0
    parser = _Parser(
        prog=PROG,
        description="Train a ranking model; every option is a --key value flag that overrides the YAML file.",
        epilog="Each trainer's keys, types, defaults and descriptions: rag-retrieval-train <trainer> --help",
    )
    parser.add_argument("trainer", choices=sorted([*TRAINERS, *TOOLS]))
    parser.add_argument("--config", help="YAML file of options")
    parser.add_argument(
        "--list-keys", action="store_true", help="print the valid keys, their defaults and what each does"
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error in the input")
    args, rest = parser.parse_known_args(argv)
    config_cls, run = load_trainer(args.trainer)
    if args.list_keys:
        from .keys_doc import list_keys

        sys.stdout.write(list_keys(config_cls))
        return 0
    config = None
    try:
        config = build_config(config_cls, load_yaml(args.config) if args.config else {}, parse_flags(rest))
        run(config)
    except Exception as e:
        if args.debug:
            raise
        failed_write = write_failure(e)
        if failed_write is not None:
            folder = getattr(config, "output_dir", None) or "the output folder"
            parser.exit(
                2,
                f"{PROG}: error: cannot write to {str(folder)!r}: the disk is full or a file-size limit was reached "
                f"({failed_write}); free space, then resume the run (resume: true continues from its last complete "
                "checkpoint)\n",
            )
        if not isinstance(e, USER_ERRORS):
            raise  # a bug: keep its traceback
        # one line, no traceback from deep inside the stack; --debug shows it
        parser.exit(2, f"{PROG}: error: {_one_line(e) or type(e).__name__}\n")
    # only on success: after a failure the other ranks may never reach the barrier
    _close_process_group()
    return 0


# What a write cut short by a full disk or `ulimit -f` raises: OSError with one of these errnos, or
# torch.save's stream writer, which reports it as a RuntimeError naming no errno.
_FULL_DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_TORCH_WRITE_FAILURES = ("iostream error", "file write failed", "unexpected pos", "No space left", "File too large")


def write_failure(error: BaseException) -> str | None:
    """What failed, when ``error`` (or an exception it was raised from or during) is a write that ran
    out of disk or hit the file-size limit; ``None`` otherwise."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_DISK_ERRNOS:
            return _one_line(current)
        if type(current).__name__ in ("RuntimeError", "SafetensorError") and any(
            marker in str(current) for marker in _TORCH_WRITE_FAILURES
        ):
            return _one_line(current)[:200]
        current = current.__cause__ or current.__context__
    return None


def _close_process_group() -> None:
    """Wait for every rank, then tear the process group down before the interpreter exits.

    A rank that exits with the group still open leaves gloo's threads running into the
    interpreter's shutdown, which aborts the process ("terminate called without an active
    exception") while rank 0 is still writing metadata; the launcher then kills rank 0 too.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
