"""Validation of user input, shared by every model family and wrapper.

Errors name the argument and the offending position or value, so a user can find the bad
document in a list of thousands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_docs(docs: Any, name: str = "docs") -> list[str]:
    """``docs`` as a list of strings; a bare string or a non-string item is a ``TypeError``."""
    if isinstance(docs, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, got a single {type(docs).__name__}; wrap it in a list")
    if not isinstance(docs, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(docs).__name__}")
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(doc).__name__}: {doc!r:.80}")
        _check_encodable(doc, f"{name}[{i}]")
    return list(docs)


def check_query(query: Any, name: str = "query") -> str:
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a str, got {type(query).__name__}: {query!r:.80}")
    _check_encodable(query, name)
    return query


def _check_encodable(text: str, name: str) -> None:
    """A lone surrogate (``"\\udcff"``, what ``surrogateescape`` decoding leaves of invalid bytes) is
    not text the tokenizer can take: name the position here instead of letting it fail inside Rust."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{name} is not valid Unicode text: a lone surrogate {text[e.start]!r} at character {e.start}; "
            "decode the source with errors='replace' or drop the character"
        ) from None


def is_single_pair(pairs: Any) -> bool:
    """Whether ``pairs`` is one ``(query, doc)`` pair (a tuple or list of two strings) rather than a list
    of pairs: what ``compute_score`` answers with one float instead of a list."""
    return isinstance(pairs, (tuple, list)) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs)


def check_pairs(pairs: Any) -> tuple[list[str], list[str]]:
    """Split ``[(query, doc), ...]`` into two lists; a single ``(query, doc)`` pair is one pair."""
    if is_single_pair(pairs):
        pairs = [pairs]
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be a list of (query, document) tuples, got {type(pairs).__name__}")
    queries, docs = [], []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"pairs[{i}] must be a (query, document) pair, got {pair!r:.80}")
        queries.append(check_query(pair[0], f"pairs[{i}][0]"))
        docs.append(check_query(pair[1], f"pairs[{i}][1]"))
    return queries, docs
