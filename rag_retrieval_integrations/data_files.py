"""Reading data files line by line: UTF-8 checks, JSONL parsing, errors that name ``file:line``.

Shared by the evaluation sets (:mod:`rag_retrieval_integrations.evaluation`) and the training
data (:mod:`rag_retrieval_train.data`): each caller passes the validator of its own line format.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["DataFormatError", "iter_jsonl", "iter_lines"]

T = TypeVar("T")


class DataFormatError(ValueError):
    """A data file breaks the format: ``"{path}:{line_number}: {reason}"``.

    ``line_number`` is 1-based, or ``None`` for what concerns the whole file (an empty file,
    a row count that does not match); the message is then ``"{path}: {reason}"``.
    """

    def __init__(self, path: str | os.PathLike, line_number: int | None, reason: str):
        self.path = str(path)
        self.line_number = line_number
        self.reason = reason
        where = self.path if line_number is None else f"{self.path}:{line_number}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # keep the three fields through pickling (worker processes)
        return type(self), (self.path, self.line_number, self.reason)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Stream ``(line_number, text)`` for every line of a UTF-8 file, newline removed.

    Lines are read one at a time (never ``readlines()``); a leading BOM is dropped; a line that
    is not valid UTF-8 raises :class:`DataFormatError` with its line number. A missing file raises
    ``FileNotFoundError`` naming it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "data file not found", str(path))
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(path, line_number, f"not valid UTF-8 ({exc})") from None
            if line_number == 1:
                text = text.removeprefix("\ufeff")
            yield line_number, text.rstrip("\r\n")


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's dict, refusing a key given twice (``json`` would keep the last silently)."""
    record = dict(pairs)
    if len(record) < len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _DuplicateKeyError(f"the key {twice!r} appears twice in one object; which one is meant is unclear")
    return record


def iter_jsonl(path: str | os.PathLike, validate: Callable[[Any], T]) -> Iterator[tuple[int, T]]:
    """Stream ``(line_number, validate(parsed_line))`` over a JSONL file, lazily.

    Blank lines are skipped but counted. Invalid JSON, an object with a key given twice, or a line
    that ``validate`` rejects with a
    ``ValueError``/``TypeError``, raises :class:`DataFormatError` ``"{path}:{line}: {reason}"``
    when that line is reached (earlier lines have been yielded by then). A file with no examples
    raises :class:`DataFormatError` naming the file; a missing one ``FileNotFoundError``.
    """
    n_examples = 0
    for line_number, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, line_number, f"invalid JSON: {exc}") from None
        except _DuplicateKeyError as exc:
            raise DataFormatError(path, line_number, str(exc)) from None
        try:
            example = validate(record)
        except (ValueError, TypeError) as exc:
            raise DataFormatError(path, line_number, str(exc)) from None
        n_examples += 1
        yield line_number, example
    if n_examples == 0:
        raise DataFormatError(path, None, "no examples: the file is empty (or has only blank lines)")
