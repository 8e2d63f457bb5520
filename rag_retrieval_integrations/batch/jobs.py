"""The corpus jobs: :class:`EncodeJob` (documents into the vectors an index stores) and :class:`ScoreJob`
((query, document) pairs scored by any ``Reranker``: the teacher step of distillation), and
:func:`add_encoded` (an index built from an encode job's parts, nothing encoded again).

Every model call is the core's own: ``Reranker(...)`` loads the model, ``score_many`` scores (its
batching, truncation and long-document handling), ``MRLEncoder``/``ColBERTEncoding`` encode as the
indexes' ``add`` does. A job's output therefore equals what the single-process path computes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from rag_retrieval_integrations.core.fingerprint import weights_fingerprint
from rag_retrieval_integrations.core.indexes.colbert_encoding import ColBERTEncoding
from rag_retrieval_integrations.core.indexes.mrl_encoder import MRLEncoder
from rag_retrieval_integrations.core.models.base import BaseReranker
from rag_retrieval_integrations.core.models.colbert import ColBERTReranker
from rag_retrieval_integrations.core.models.embedding import EmbeddingModel
from rag_retrieval_integrations.core.models.factory import Reranker

from .shards import read_manifest, read_output
from .spec import JobSpec, RowError, Worker

logger = logging.getLogger(__name__)


def _load(model: str, model_type: str | None, options: Mapping[str, Any]) -> BaseReranker:
    return Reranker(model, model_type=model_type, **dict(options))


def _model_record(model: str) -> dict[str, Any]:
    """The model as the output depends on it: its name, and for a local folder its weights' fingerprint
    (a model retrained behind the same path never continues a folder of the old one's outputs)."""
    return {"model": str(model), "weights": weights_fingerprint(model) if os.path.isdir(model) else None}


def _function_name(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


# ---- scoring ----------------------------------------------------------------------------------


def query_documents(row: Mapping[str, Any]) -> dict[str, Any]:
    """The default reader of :class:`ScoreJob`: ``{"query", "documents": [...]}``, ``{"query", "document"}``
    or ``{"query", "hits": [{"content"|"text": ...}, ...]}``; returns the row with ``query`` and ``docs``."""
    query = row.get("query")
    if not isinstance(query, str):
        raise ValueError("each row needs a string 'query'")
    if isinstance(row.get("document"), str):
        docs = [row["document"]]
    elif isinstance(row.get("documents"), list):
        docs = row["documents"]
    elif isinstance(row.get("hits"), list):
        docs = [hit.get("content", hit.get("text")) if isinstance(hit, Mapping) else None for hit in row["hits"]]
    else:
        raise ValueError("each row needs 'document' (a string), 'documents' (a list) or 'hits' (a list of objects)")
    if not all(isinstance(doc, str) for doc in docs):
        raise ValueError("every document must be a string")
    return {**row, "docs": docs}


def with_scores(example: Mapping[str, Any], scores: list[float]) -> dict[str, Any]:
    """The default writer of :class:`ScoreJob`: the input row plus ``score`` (one document) or ``scores``."""
    row = {k: v for k, v in example.items() if k != "docs"}
    if isinstance(row.get("document"), str):
        row["score"] = scores[0]
    else:
        row["scores"] = scores
    return row


@dataclass
class ScoreJob(JobSpec):
    """Score every (query, document) of the input with a ``Reranker`` (any family).

    Args:
        model: a checkpoint path or hub id; ``model_type`` and ``model_options`` as ``Reranker(...)`` takes them.
        batch_size: pairs per forward pass.
        read_row: a row -> a dict with ``query`` and ``docs`` (default :func:`query_documents`); a
            ``ValueError`` it raises is reported with the row's file and line.
        write_row: (that dict, the scores of its docs) -> the output row (default :func:`with_scores`).
            Both are module-level functions (they are sent to the workers by reference).
    """

    job: ClassVar[str] = "score"
    model: str
    model_type: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    read_row: Callable[[Mapping[str, Any]], dict[str, Any]] = query_documents
    write_row: Callable[[Mapping[str, Any], list[float]], dict[str, Any]] = with_scores

    def settings(self) -> dict[str, Any]:
        return {
            **_model_record(str(self.model)),
            "model_type": self.model_type,
            "model_options": self.model_options,
            "read_row": _function_name(self.read_row),
            "write_row": _function_name(self.write_row),
        }

    def worker(self) -> Worker:
        scorer = _load(str(self.model), self.model_type, self.model_options)

        def score(rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
            examples = []
            for line, row in rows:
                try:
                    examples.append(self.read_row(row))
                except ValueError as err:
                    raise RowError(line, str(err)) from None
            with scorer.truncation_scope("batch scoring"):
                scores = scorer.score_many(
                    [ex["query"] for ex in examples], [ex["docs"] for ex in examples], batch_size=self.batch_size
                )
            return [self.write_row(ex, row_scores) for ex, row_scores in zip(examples, scores)]

        return score


# ---- encoding ---------------------------------------------------------------------------------


class _ColBERTDocuments(ColBERTEncoding):
    """A ColBERT model's document token vectors as a ColBERT index stores them (float16)."""

    def __init__(self, model: ColBERTReranker, batch_size: int | None) -> None:
        self.model = model
        self.dim = model.embedding_dim
        self.batch_size = batch_size
        self.show_progress_bar = False


@dataclass
class EncodeJob(JobSpec):
    """Encode every document of the input (rows ``{"text", "id"?, "metadata"?}``) as an index stores it.

    An embedding model gives ``vector`` (the full float32 vector, unit for cosine: what ``MRLIndex`` and
    ``QdrantMRLIndex`` store); a ColBERT model gives ``vector`` (the token vectors, float16, flattened)
    and ``tokens``. Rows keep ``id``, ``text`` and ``metadata``. :func:`add_encoded` adds them to an index.

    Args:
        model: an embedding or ColBERT checkpoint; ``model_type`` and ``model_options`` as ``Reranker(...)``.
        batch_size: texts per forward pass (default: the model's).
        text_field, id_field: the input columns of the text and of the (optional) id.
    """

    job: ClassVar[str] = "encode"
    model: str
    model_type: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    text_field: str = "text"
    id_field: str = "id"

    def settings(self) -> dict[str, Any]:
        return {
            **_model_record(str(self.model)),
            "model_type": self.model_type,
            "model_options": self.model_options,
            "text_field": self.text_field,
            "id_field": self.id_field,
        }

    def worker(self) -> Worker:
        model = _load(str(self.model), self.model_type, self.model_options)
        if isinstance(model, ColBERTReranker):
            encoder: Any = _ColBERTDocuments(model, self.batch_size)
        elif isinstance(model, EmbeddingModel):
            encoder = MRLEncoder(
                model, search_dim=model.embedding_dim, batch_size=self.batch_size, show_progress_bar=False
            )
        else:
            raise TypeError(
                f"encode takes an embedding or ColBERT model; {self.model!r} is a {model.model_type!r} model"
            )

        def encode(rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
            for line, row in rows:
                if not isinstance(row.get(self.text_field), str):
                    raise RowError(line, f"each row needs a string {self.text_field!r}")
            texts = [row[self.text_field] for _, row in rows]
            vectors = encoder.encode_documents(texts) if texts else []
            out = []
            for (_, row), vector in zip(rows, vectors):
                record: dict[str, Any] = {"text": row[self.text_field]}
                if row.get(self.id_field) is not None:
                    record["id"] = str(row[self.id_field])
                if isinstance(row.get("metadata"), Mapping):
                    record["metadata"] = dict(row["metadata"])
                array = np.asarray(vector)
                if array.ndim == 2:
                    record["tokens"] = int(array.shape[0])
                record["vector"] = array.reshape(-1).astype(np.float32)  # float32 in Parquet, numbers in JSONL
                out.append(record)
            return out

        return encode


def _vectors_of(rows: list[dict[str, Any]]) -> Any:
    if rows and "tokens" in rows[0]:
        return [np.asarray(r["vector"], dtype=np.float16).reshape(int(r["tokens"]), -1) for r in rows]
    return np.asarray([r["vector"] for r in rows], dtype=np.float32)


def add_encoded(index: Any, folder: str | os.PathLike, *, chunk_rows: int = 10_000) -> int:
    """Add an :class:`EncodeJob`'s output (``folder``) to ``index`` (``add_vectors``: nothing is encoded again);
    returns the number of documents added. The index must use the job's model (its vectors' kind and size)."""
    record = read_manifest(folder)
    if record.get("job") != EncodeJob.job:
        raise ValueError(f"{os.fspath(folder)!r} holds a {record.get('job')!r} job's output, not an encode job's")
    model = getattr(index, "model", None)
    name = getattr(model, "model_name_or_path", None)
    if name is not None and os.path.normpath(str(name)) != os.path.normpath(str(record["settings"]["model"])):
        logger.warning(
            "%s was encoded with %r, the index's model is %r: make sure they are the same checkpoint",
            folder,
            record["settings"]["model"],
            name,
        )
    added = 0
    for chunk in _chunks(read_output(folder), chunk_rows):
        with_ids = ["id" in r for r in chunk]
        if any(with_ids) and not all(with_ids):
            raise ValueError(f"{os.fspath(folder)!r}: some rows have an 'id' and others not; give every row one")
        index.add_vectors(
            [r["text"] for r in chunk],
            _vectors_of(chunk),
            ids=[r["id"] for r in chunk] if all(with_ids) else None,
            metadatas=[r.get("metadata") for r in chunk],
        )
        added += len(chunk)
    return added


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
