"""Mining corpora: the documents hard negatives are drawn from, read from a file or checked from a list.

A corpus file is JSONL ``{"text": ...}`` (BEIR's ``_id``/``title`` keys allowed), a ``.tsv`` file
with a header row naming a ``text`` column, or one document per non-blank line; errors name
``file:line``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_retrieval_integrations.data_files import DataFormatError, iter_lines

from .jsonl import check_object, iter_jsonl

CORPUS_KEYS = ("text", "_id", "id", "title", "metadata")


def _corpus_record(record: Any) -> str:
    check_object(record, CORPUS_KEYS)
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"'text' must be a non-empty string, got {text!r}"[:200])
    return text


def load_corpus(path: str | os.PathLike) -> list[str]:
    """The documents of a corpus file: JSONL ``{"text": ...}`` lines (a ``.jsonl``/``.json`` file;
    BEIR's ``_id``/``title`` keys are allowed and ignored), a ``.tsv`` file with a header row naming a
    ``text`` column (BEIR's ``id<TAB>text[<TAB>title]``), else one document per non-blank line.
    Errors name ``file:line``."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return [text for _, text in iter_jsonl(path, _corpus_record)]
    if suffix == ".tsv":
        return _tsv_corpus(path)
    docs = [text for _, text in iter_lines(path) if text.strip()]
    if not docs:
        raise DataFormatError(path, None, "the corpus file holds no documents")
    return docs


def _tsv_corpus(path: str | os.PathLike) -> list[str]:
    """The ``text`` column of a tab-separated corpus whose first row names the columns."""
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataFormatError(path, None, "the corpus file holds no documents")
    header = first[1].split("\t")
    if "text" not in header:
        raise DataFormatError(
            path, 1, f"a .tsv corpus starts with a header row naming a 'text' column (e.g. id<TAB>text); got {header}"
        )
    column = header.index("text")
    docs = []
    for line_number, line in lines:
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DataFormatError(path, line_number, f"{len(cells)} columns, the header has {len(header)}")
        if not cells[column].strip():
            raise DataFormatError(path, line_number, "the 'text' column is empty")
        docs.append(cells[column])
    if not docs:
        raise DataFormatError(path, None, "the corpus file holds no documents (only its header)")
    return docs


def corpus_texts(corpus: str | os.PathLike | Sequence[str]) -> list[str]:
    """The documents of ``corpus``: a corpus file, or a list of non-empty texts (checked)."""
    if isinstance(corpus, (str, os.PathLike)):
        if not Path(corpus).is_file():
            raise FileNotFoundError(
                f"corpus {os.fspath(corpus)[:80]!r} is not an existing file; a corpus is a file path, or a list of "
                "texts (corpus=[text, ...])"
            )
        return load_corpus(corpus)
    if not isinstance(corpus, Sequence):
        raise TypeError(f"corpus must be a file path or a list of texts, got {type(corpus).__name__}")
    for i, text in enumerate(corpus):
        if not isinstance(text, str):
            raise TypeError(f"corpus[{i}] must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"corpus[{i}] is empty or blank; an empty document is no negative worth training on")
    return list(corpus)
