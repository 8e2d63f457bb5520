"""Reranking evaluation sets: JSONL ``{"query", "candidates": [{"content", "label"}, ...]}`` or
the WikiQA TSV layout (``question<TAB>sentence<TAB>label`` with a header)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.jsonl import DataFormatError, iter_jsonl


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
        docs.append(c["content"])
        labels.append(_label(c["label"], f"candidates[{i}].label"))
    return query, docs, labels


def load_rerank_set(path: str | os.PathLike) -> RerankSet:
    """Read a reranking set; errors name ``file:line``. ``.tsv`` files are read as WikiQA."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"evaluation set {str(path)!r} does not exist")
    queries: dict[str, int] = {}
    out = RerankSet([], [], [], str(path))

    def add(query: str, docs: list[str], labels: list[int]) -> None:
        if query not in queries:
            queries[query] = len(out.queries)
            out.queries.append(query)
            out.candidates.append([])
            out.labels.append([])
        i = queries[query]
        out.candidates[i].extend(docs)
        out.labels[i].extend(labels)

    if path.suffix == ".tsv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = {"question", "sentence", "label"} - set(reader.fieldnames or [])
            if missing:
                raise DataFormatError(
                    path, 1, f"the header lacks {sorted(missing)}; expected question, sentence, label"
                )
            for line, row in enumerate(reader, start=2):
                try:
                    add(row["question"], [row["sentence"]], [_label(int(row["label"]), "label")])
                except (TypeError, ValueError) as e:
                    raise DataFormatError(path, line, str(e)) from None
    else:
        for _, (query, docs, labels) in iter_jsonl(path, validate=_validate):
            add(query, docs, labels)
    if not out.queries:
        raise DataFormatError(path, None, "no queries")
    return out
