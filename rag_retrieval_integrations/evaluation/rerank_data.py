"""Reranking evaluation sets: JSONL ``{"query", "candidates": [{"content", "label"}, ...]}`` or a
WikiQA TSV file with a header, in either layout:

- ``question<TAB>sentence<TAB>label`` (the layout of ``../shared/data/wikiqa``), rows grouped by question;
- the official WikiQA release, ``QuestionID<TAB>Question<TAB>DocumentID<TAB>DocumentTitle<TAB>SentenceID
  <TAB>Sentence<TAB>Label``, rows grouped by ``QuestionID``.

Header names are matched case-insensitively. Queries keep the order of their first row, candidates
the order of the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data_files import DataFormatError, iter_jsonl, iter_lines

# the columns read from a TSV file; any other header name is refused, so a column is never dropped unseen
TSV_REQUIRED = ("question", "sentence", "label")
TSV_OPTIONAL = ("questionid", "documentid", "documenttitle", "sentenceid")
TSV_LAYOUTS = "question<TAB>sentence<TAB>label, or the official WikiQA QuestionID<TAB>Question<TAB>...<TAB>Label"


@dataclass
class RerankSet:
    """Queries, each with its candidate documents and their relevance labels (ints >= 0)."""

    queries: list[str]
    candidates: list[list[str]]
    labels: list[list[int]]
    source: str

    def __len__(self) -> int:
        return len(self.queries)


def _label(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise ValueError(f"{where} must be a relevance grade (an integer >= 0), got {value!r}")
    return int(value)


def _validate(record: Any) -> tuple[str, list[str], list[int]]:
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object with 'query' and 'candidates'")
    unknown = sorted(set(record) - {"query", "candidates"})
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; a line has 'query' and 'candidates'")
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"'query' must be a non-empty string, got {query!r}")
    candidates = record.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise ValueError('\'candidates\' must be a non-empty list of {"content", "label"} objects')
    docs, labels = [], []
    for i, c in enumerate(candidates):
        if not isinstance(c, dict) or not isinstance(c.get("content"), str) or "label" not in c:
            raise ValueError(f"candidates[{i}] must be an object with a string 'content' and a 'label'")
        extra = sorted(set(c) - {"content", "label"})
        if extra:  # a misspelt key ("contents") would otherwise be ignored unseen
            raise ValueError(f"candidates[{i}] has unknown key(s) {extra}; a candidate has 'content' and 'label'")
        docs.append(c["content"])
        labels.append(_label(c["label"], f"candidates[{i}].label"))
    return query, docs, labels


def _tsv_columns(path: Path, header: list[str]) -> dict[str, int]:
    """The position of each column named in the header line; raises naming ``file:1``."""
    names = [name.strip().lower() for name in header]
    unknown = [h for h, name in zip(header, names) if name not in TSV_REQUIRED + TSV_OPTIONAL]
    missing = [name for name in TSV_REQUIRED if name not in names]
    repeated = sorted({name for name in names if names.count(name) > 1})
    for problem, names_at_fault in (
        ("unknown column(s)", unknown),
        ("missing column(s)", missing),
        ("repeated", repeated),
    ):
        if names_at_fault:
            raise DataFormatError(path, 1, f"{problem} {names_at_fault} in the header; expected {TSV_LAYOUTS}")
    return {name: i for i, name in enumerate(names)}


def _iter_tsv(path: Path) -> Iterator[tuple[int, str, str, str, int]]:
    """``(line_number, group_key, question, sentence, label)`` for every row of a WikiQA TSV file."""
    lines = iter_lines(path)  # drops a leading UTF-8 BOM, names the line of bad UTF-8
    header = next(lines, None)
    if header is None:
        return
    columns = _tsv_columns(path, header[1].split("\t"))
    first_question: dict[str, tuple[int, str]] = {}
    for line, text in lines:
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != len(columns):
            hint = "; a tab inside a sentence splits it: replace it with a space" if len(fields) > len(columns) else ""
            raise DataFormatError(
                path, line, f"{len(fields)} tab-separated fields, the header has {len(columns)}{hint}"
            )
        question, sentence, label = (fields[columns[name]] for name in TSV_REQUIRED)
        if not question.strip():
            raise DataFormatError(path, line, "empty question")
        label = label.strip()
        if not (label.isascii() and label.isdigit()):
            raise DataFormatError(path, line, f"label must be a relevance grade (an integer >= 0), got {label!r}")
        key = question
        if "questionid" in columns:
            key = fields[columns["questionid"]].strip()
            if not key:
                raise DataFormatError(path, line, "empty QuestionID")
            seen_line, seen = first_question.setdefault(key, (line, question))
            if seen != question:  # two questions under one id would be scored as one query
                raise DataFormatError(
                    path, line, f"QuestionID {key!r} has question {question!r} here but {seen!r} on line {seen_line}"
                )
        yield line, key, question, sentence, int(label)


def load_rerank_set(path: str | os.PathLike) -> RerankSet:
    """Read a reranking set; errors name ``file:line``. ``.tsv`` files are read as WikiQA."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"evaluation set {str(path)!r} does not exist")
    queries: dict[str, int] = {}
    out = RerankSet([], [], [], str(path))

    def add(key: str, query: str, docs: list[str], labels: list[int]) -> None:
        if key not in queries:
            queries[key] = len(out.queries)
            out.queries.append(query)
            out.candidates.append([])
            out.labels.append([])
        i = queries[key]
        out.candidates[i].extend(docs)
        out.labels[i].extend(labels)

    if path.suffix == ".tsv":
        for _, key, question, sentence, label in _iter_tsv(path):
            add(key, question, [sentence], [label])
    else:
        for _, (query, docs, labels) in iter_jsonl(path, validate=_validate):
            add(query, query, docs, labels)
    if not out.queries:
        raise DataFormatError(path, None, "no queries")
    return out
