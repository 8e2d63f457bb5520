"""An index's documents: search results (:class:`IndexHit`), the checks on ids and metadata given
to ``add``, and ``documents.jsonl``, the file that holds ids, texts and metadata in an index folder."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..text.inputs import check_docs

DOCUMENTS_FILE = "documents.jsonl"


@dataclass(frozen=True)
class IndexHit:
    """One search result.

    Attributes:
        id: the document's id (given to ``add``, or generated).
        text: the document text.
        metadata: the document's metadata (a copy).
        score: the index's exact score of the query and the document (MaxSim, cosine, ...).
        rank: 1 for the best document.
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0
    rank: int = 0


def check_ids(ids: Sequence[str] | None, n: int) -> list[str]:
    """``n`` unique ids: the given ones, checked, or new UUIDs."""
    if ids is None:
        return [uuid.uuid4().hex for _ in range(n)]
    ids = check_docs(ids, "ids")
    if len(ids) != n:
        raise ValueError(f"ids has {len(ids)} entries for {n} texts; give one id per text")
    seen: set[str] = set()
    for i, doc_id in enumerate(ids):
        if doc_id in seen:
            raise ValueError(f"ids[{i}] = {doc_id!r} is repeated; ids must be unique")
        seen.add(doc_id)
    return ids


def check_metadatas(metadatas: Sequence[Mapping[str, Any] | None] | None, n: int) -> list[dict[str, Any]]:
    """``n`` JSON-serializable metadata dicts (``None`` entries become ``{}``), copied."""
    if metadatas is None:
        return [{} for _ in range(n)]
    if isinstance(metadatas, (str, Mapping)) or not isinstance(metadatas, Sequence):
        raise TypeError(f"metadatas must be a list of dicts, one per text, got {type(metadatas).__name__}")
    if len(metadatas) != n:
        raise ValueError(f"metadatas has {len(metadatas)} entries for {n} texts; give one per text")
    out = []
    for i, metadata in enumerate(metadatas):
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadatas[{i}] must be a dict or None, got {type(metadata).__name__}")
        try:
            json.dumps(dict(metadata))
        except (TypeError, ValueError) as e:
            raise TypeError(f"metadatas[{i}] must be JSON-serializable to be saved with the index: {e}") from None
        out.append(dict(metadata))
    return out


def write_documents(path: Path, ids: Iterable[str], texts: Iterable[str], metadatas: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps({"id": doc_id, "text": text, "metadata": metadata}, ensure_ascii=False) + "\n"
            for doc_id, text, metadata in zip(ids, texts, metadatas)
        )


def read_documents(path: Path) -> list[Any]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def documents_problem(documents: list[Any], n: int) -> str | None:
    """What is wrong with the records read from the documents file, if anything, for an index of ``n``."""
    if len(documents) != n or any(not isinstance(d, dict) or {"id", "text", "metadata"} - set(d) for d in documents):
        return f"{DOCUMENTS_FILE} does not hold {n} documents with id, text and metadata"
    if len({d["id"] for d in documents}) != n:
        return f"{DOCUMENTS_FILE} repeats an id"
    return None


def split_documents(documents: list[dict[str, Any]]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """The ids, texts and metadatas of checked ``documents.jsonl`` records, as parallel lists."""
    return [d["id"] for d in documents], [d["text"] for d in documents], [d["metadata"] for d in documents]
