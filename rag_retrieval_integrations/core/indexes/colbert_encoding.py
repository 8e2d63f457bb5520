"""``ColBERTEncoding``: the model side of a ColBERT index (the FAISS one and the Qdrant one): token vectors of
documents (float16, as stored) and queries, and the check of given ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..models.colbert import ColBERTReranker
from .build_encoding import encode_in_chunks

COLBERT_MODEL_OPTIONS: Mapping[str, str] = {
    "max_length": "document_length",
    "query_length": "query_length",
    "query_expansion": "query_expansion",
    "query_mean": "query_mean",
}
"""The ``Reranker`` options a ColBERT index (either engine) reloads its recorded model with."""


class ColBERTEncoding:
    """Encoding with the index's ColBERT ``model``; the index sets ``model``, ``dim``, ``batch_size`` and
    ``show_progress_bar``."""

    model: ColBERTReranker
    dim: int
    batch_size: int | None
    show_progress_bar: bool | None

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token vectors of ``texts`` in float16, as stored: one ``(tokens, dim)`` array per text."""
        chunks = encode_in_chunks(
            self.model,
            list(texts),
            lambda chunk: self.model.encode_documents(chunk, batch_size=self.batch_size),
            show_progress_bar=self.show_progress_bar,
            batch_size=self.batch_size,
            desc="Indexing",
        )
        return [v.astype(np.float16) for chunk in chunks for v in chunk]

    def encode_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """Query token vectors (query length and expansion as the model's): one ``(tokens, dim)`` array each."""
        return self.model.encode_queries(queries, batch_size=self.batch_size)

    def _check_vectors(self, vectors: Any, n: int) -> list[np.ndarray]:
        if len(vectors) != n:
            raise ValueError(f"token_vectors has {len(vectors)} entries for {n} texts")
        checked = []
        for i, v in enumerate(vectors):
            v = np.asarray(v)
            if v.ndim != 2 or v.shape[1] != self.dim:
                raise ValueError(f"token_vectors[{i}] must be a (tokens, {self.dim}) array, got shape {v.shape}")
            checked.append(v.astype(np.float16))
        return checked
