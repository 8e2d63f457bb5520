"""The JSONL training format: streaming, per-line validation, errors that name ``file:line``.

One example per line, each line validated on its own (the format is never guessed from the
first line, so pair, triplet and scored lines are checked the same way wherever they stand):

- pair:    ``{"query": str, "pos": [str, ...]}``
- triplet: ``{"query": str, "pos": [str, ...], "neg": [str, ...]}``
- scored:  ``{"query": str, "pos": [str, ...], "scores": [number, ...]}``: ``pos`` holds every
  document of the query and ``scores`` one teacher score per document, in the same order
  (``neg`` must then be absent).
- optional on every line: ``prompt_for_query``, ``prompt_for_passage`` (strings).

A JSON ``null`` for an optional key counts as the key being absent. Blank lines are skipped
but counted, so line numbers are those an editor shows (1-based). The file is read one line
at a time; it is never held in memory as a whole.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypedDict, TypeVar

from rag_retrieval_integrations import data_files
from rag_retrieval_integrations.data_files import DataFormatError, iter_lines

__all__ = [
    "ALLOWED_KEYS",
    "DataFormatError",
    "EmbeddingExample",
    "iter_jsonl",
    "iter_lines",
    "validate_example",
]

ALLOWED_KEYS = ("query", "pos", "neg", "scores", "prompt_for_query", "prompt_for_passage")

T = TypeVar("T")


class EmbeddingExample(TypedDict):
    """One validated line, normalized: absent lists are ``[]``, absent prompts ``None``.

    ``scores`` is non-empty exactly for the scored format (one score per entry of ``pos``).
    A prompt of ``None`` means "not given on this line" (a default may apply), while ``""``
    means "no prompt for this line".
    """

    query: str
    pos: list[str]
    neg: list[str]
    scores: list[float]
    prompt_for_query: str | None
    prompt_for_passage: str | None


def type_name(value: Any) -> str:
    """A JSON value's type for an error message (``null`` for ``None``)."""
    return "null" if value is None else type(value).__name__


def check_object(record: Any, allowed: Sequence[str]) -> dict[str, Any]:
    """``record`` if it is a JSON object with no key outside ``allowed``; else ``ValueError(reason)``."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type_name(record)}")
    unknown = sorted(set(record) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; allowed keys: {', '.join(allowed)}")
    return record


def _string_list(record: dict, key: str, *, required: bool) -> list[str]:
    value = record.get(key)
    if value is None:
        if required:
            raise ValueError(f"missing required key {key!r} (a non-empty list of strings)")
        return []
    if isinstance(value, str):
        raise ValueError(
            f'{key!r} must be a list of strings, got a bare string; write {key!r}: ["..."] '
            "(a bare string is not wrapped silently)"
        )
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list of strings, got {type_name(value)}")
    if required and not value:
        raise ValueError(f"{key!r} must be a non-empty list of strings, got []")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{key}[{i}] must be a string, got {type_name(item)}")
    return value


def _score_list(record: dict, n_pos: int) -> list[float]:
    value = record.get("scores")
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"'scores' must be a list of numbers, got {type_name(value)}")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ValueError(f"scores[{i}] must be a number, got {type_name(item)}")
        if not math.isfinite(item):
            raise ValueError(f"scores[{i}] must be a finite number, got {item}")
    if len(value) != n_pos:
        raise ValueError(
            f"'scores' has {len(value)} entries but 'pos' has {n_pos}; the scored format needs one "
            "teacher score per document in 'pos', in the same order"
        )
    if record.get("neg") is not None:
        raise ValueError(
            "a scored line ('scores' given) must not have 'neg': put every document in 'pos' with its score"
        )
    return [float(x) for x in value]


def _optional_str(record: dict, key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {type_name(value)}")
    return value


def validate_example(record: Any) -> EmbeddingExample:
    """Check one parsed JSONL line and return it normalized; raise ``ValueError(reason)``.

    The reason carries no location; :func:`iter_jsonl` prefixes ``file:line``.
    """
    check_object(record, ALLOWED_KEYS)
    query = record.get("query")
    if query is None:
        raise ValueError("missing required key 'query' (a non-empty string)")
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"'query' must be a non-empty string, got {query!r}")
    pos = _string_list(record, "pos", required=True)
    neg = _string_list(record, "neg", required=False)
    return EmbeddingExample(
        query=query,
        pos=pos,
        neg=neg,
        scores=_score_list(record, len(pos)),
        prompt_for_query=_optional_str(record, "prompt_for_query"),
        prompt_for_passage=_optional_str(record, "prompt_for_passage"),
    )


def iter_jsonl(path: str | os.PathLike, validate: Callable[[Any], T] = validate_example) -> Iterator[tuple[int, T]]:
    """:func:`rag_retrieval_integrations.data_files.iter_jsonl`, validating training examples by default."""
    return data_files.iter_jsonl(path, validate)
