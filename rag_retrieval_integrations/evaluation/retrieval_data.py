"""Retrieval evaluation sets: a BEIR folder or a SQuAD v1.1 JSON file, read into one shape.

- **BEIR** (a folder): ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line; a document is
  ``title + " " + text``, as BEIR's own evaluation encodes it), ``queries.jsonl``
  (``{"_id", "text"}``) and ``qrels/<split>.tsv`` (header ``query-id<TAB>corpus-id<TAB>score``;
  a score > 0 marks a relevant document). Other keys (``metadata``) are ignored.
- **SQuAD v1.1** (a ``.json`` file): every distinct paragraph (``context``) is a document, every
  question a query, relevant to the paragraph it was asked about.

Queries without a relevant document are left out (and counted); a set where no query has one is
an error. Errors name ``file:line`` (or, in SQuAD JSON, the element: ``data[3].paragraphs[2]``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data_files import DataFormatError, iter_jsonl, iter_lines

QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass
class RetrievalSet:
    """A corpus, the queries to evaluate and their relevance judgements.

    Attributes:
        doc_ids, doc_texts: the corpus, in file order.
        query_ids, query_texts: the queries kept (each has at least one relevant document).
        qrels: ``qrels[query_id][doc_id] = grade`` for the kept queries (grade > 0: relevant).
        source: the file or folder read.
        queries_without_relevant: queries left out because no document is relevant to them.
        queries_cut: queries left out by ``max_queries``.
        left_out_query_ids: the ids of the queries read but left out (without a relevant
            document, or past ``max_queries``), so that a run file naming them is not an error.
    """

    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    source: str
    queries_without_relevant: int = 0
    queries_cut: int = 0
    left_out_query_ids: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.query_ids)


def load_retrieval_set(path: str | os.PathLike, *, split: str = "test", max_queries: int | None = None) -> RetrievalSet:
    """Read a BEIR folder (qrels of ``split``) or a SQuAD v1.1 ``.json`` file.

    Args:
        path: the BEIR folder or the SQuAD file.
        split: which ``qrels/<split>.tsv`` of a BEIR folder to evaluate on.
        max_queries: keep only the first ``max_queries`` queries that have a relevant document
            (the corpus stays whole).

    Raises:
        FileNotFoundError: ``path`` (or a file a BEIR folder needs) does not exist.
        DataFormatError: a malformed line or element, or no query with a relevant document.
    """
    path = Path(path)
    if max_queries is not None and (
        isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries <= 0
    ):
        raise ValueError(f"max_queries must be a positive integer, got {max_queries!r}")
    if path.is_dir():
        data = _load_beir(path, split)
    elif path.is_file() and path.suffix == ".json":
        data = _load_squad(path)
    elif not path.exists():
        raise FileNotFoundError(f"evaluation set {str(path)!r} does not exist")
    else:
        raise ValueError(
            f"{str(path)!r} is neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) nor a SQuAD .json file"
        )
    if max_queries is not None and len(data) > max_queries:
        data.queries_cut = len(data) - max_queries
        for qid in data.query_ids[max_queries:]:
            del data.qrels[qid]
            data.left_out_query_ids.add(qid)
        del data.query_ids[max_queries:], data.query_texts[max_queries:]
    return data


# ---- BEIR ----------------------------------------------------------------------------------------


def _beir_id(record: dict[str, Any]) -> str:
    value = record.get("_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"'_id' must be a non-empty string, got {value!r}")
    return value


def _optional_text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def _corpus_line(record: Any) -> tuple[str, str]:
    if not isinstance(record, dict):
        raise TypeError('expected a JSON object {"_id", "title", "text"}')
    if "text" not in record:
        raise ValueError("missing 'text'")
    title, text = _optional_text(record, "title"), _optional_text(record, "text")
    return _beir_id(record), f"{title} {text}".strip() if title else text


def _query_line(record: Any) -> tuple[str, str]:
    if not isinstance(record, dict):
        raise TypeError('expected a JSON object {"_id", "text"}')
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"'text' must be a non-empty string, got {text!r}")
    return _beir_id(record), text


def _read_beir_jsonl(file: Path, validate: Any) -> dict[str, str]:
    """``{id: text}`` in file order; a repeated ``_id`` is an error naming both lines."""
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, (item_id, text) in iter_jsonl(file, validate=validate):
        if item_id in out:
            raise DataFormatError(file, line, f"_id {item_id!r} repeats line {first_line[item_id]}")
        out[item_id] = text
        first_line[item_id] = line
    return out


def _read_qrels(file: Path, queries: dict[str, str], corpus: dict[str, str]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line, text in iter_lines(file):
        if line == 1:
            if tuple(c.strip() for c in text.split("\t")) != QRELS_HEADER:
                raise DataFormatError(file, 1, f"expected the header {'<TAB>'.join(QRELS_HEADER)}, got {text!r:.80}")
            continue
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 3:
            raise DataFormatError(
                file, line, f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}"
            )
        qid, did, score = (f.strip() for f in fields)
        try:
            grade = int(score)
        except ValueError:
            raise DataFormatError(file, line, f"score must be an integer, got {score!r}") from None
        if qid not in queries:
            raise DataFormatError(file, line, f"query-id {qid!r} is not in queries.jsonl")
        if did not in corpus:
            raise DataFormatError(file, line, f"corpus-id {did!r} is not in corpus.jsonl")
        if did in qrels.setdefault(qid, {}):
            raise DataFormatError(file, line, f"the pair ({qid!r}, {did!r}) is judged twice")
        qrels[qid][did] = grade
    return qrels


def _load_beir(folder: Path, split: str) -> RetrievalSet:
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"BEIR folder {str(folder)!r} has no {name}")
    qrels_file = folder / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise FileNotFoundError(
            f"BEIR folder {str(folder)!r} has no qrels/{split}.tsv"
            + (f"; --split can be one of {found}" if found else "")
        )
    corpus = _read_beir_jsonl(folder / "corpus.jsonl", _corpus_line)
    queries = _read_beir_jsonl(folder / "queries.jsonl", _query_line)
    qrels = _read_qrels(qrels_file, queries, corpus)
    return _keep_judged(str(folder), corpus, queries, qrels, qrels_file)


def _keep_judged(
    source: str, corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, dict[str, int]], where: Path
) -> RetrievalSet:
    """The set over the queries with a relevant document (in query order), the others counted."""
    kept = [q for q in queries if any(g > 0 for g in qrels.get(q, {}).values())]
    if not kept:
        raise DataFormatError(where, None, "no query has a relevant document (a score > 0): nothing to evaluate")
    return RetrievalSet(
        doc_ids=list(corpus),
        doc_texts=list(corpus.values()),
        query_ids=kept,
        query_texts=[queries[q] for q in kept],
        qrels={q: qrels[q] for q in kept},
        source=source,
        queries_without_relevant=len(queries) - len(kept),
        left_out_query_ids=set(queries) - set(kept),
    )


# ---- SQuAD ---------------------------------------------------------------------------------------


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{where} must be a list, got {type(value).__name__}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where} must be a non-empty string, got {value!r:.80}")
    return value


def _load_squad(file: Path) -> RetrievalSet:
    try:
        with open(file, encoding="utf-8-sig") as f:
            root = json.load(f)
    except json.JSONDecodeError as e:
        raise DataFormatError(file, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise DataFormatError(file, None, f"not valid UTF-8 ({e})") from None
    corpus: dict[str, str] = {}
    doc_of_context: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    try:
        if not isinstance(root, dict) or "data" not in root:
            raise ValueError('expected the SQuAD layout {"data": [{"paragraphs": [{"context", "qas"}]}]}')
        for i, article in enumerate(_list(root["data"], "data")):
            if not isinstance(article, dict):
                raise TypeError(f"data[{i}] must be an object with 'paragraphs'")
            for j, paragraph in enumerate(_list(article.get("paragraphs"), f"data[{i}].paragraphs")):
                where = f"data[{i}].paragraphs[{j}]"
                if not isinstance(paragraph, dict):
                    raise TypeError(f"{where} must be an object with 'context' and 'qas'")
                context = _text(paragraph.get("context"), f"{where}.context")
                doc_id = doc_of_context.setdefault(context, f"p{len(doc_of_context)}")
                corpus[doc_id] = context
                for k, qa in enumerate(_list(paragraph.get("qas", []), f"{where}.qas")):
                    if not isinstance(qa, dict):
                        raise TypeError(f"{where}.qas[{k}] must be an object with 'id' and 'question'")
                    qid = _text(qa.get("id"), f"{where}.qas[{k}].id")
                    if qid in queries:
                        raise ValueError(f"{where}.qas[{k}].id {qid!r} is used by an earlier question")
                    queries[qid] = _text(qa.get("question"), f"{where}.qas[{k}].question")
                    qrels[qid] = {doc_id: 1}
    except (ValueError, TypeError) as e:
        raise DataFormatError(file, None, str(e)) from None
    if not corpus:
        raise DataFormatError(file, None, "no paragraphs: the corpus is empty")
    return _keep_judged(str(file), corpus, queries, qrels, file)
