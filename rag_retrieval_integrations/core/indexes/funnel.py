"""The Matryoshka funnel over any vector store, framework-neutral: what the LangChain and LlamaIndex
``MRLVectorStoreRetriever`` adapters share.

The store (a framework's own: in-memory, FAISS, a distributed database) holds each document's
``search_dim``-dim prefix as its vector, and its full vector as text in ``metadata[vector_key]``.
A query is encoded once; the store returns the :meth:`VectorStoreFunnel.shortlist_width` nearest by
prefix (the width ``MRLIndex`` uses: ``max(k * shortlist_factor, shortlist_size)``), and those are
re-scored with the full vectors, as :class:`~.mrl.MRLIndex` does with its own FAISS shortlist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..options import check_positive_int
from .mrl_encoder import MRLEncoder
from .mrl_vectors import (
    DEFAULT_SHORTLIST_FACTOR,
    VECTOR_DTYPES,
    VectorDtype,
    check_shortlist_size,
    rescore_stored,
    shortlist_width,
    vector_to_text,
)

VECTOR_KEY = "mrl_vector"
"""The metadata key of a document's full vector in the store (default)."""

_E = TypeVar("_E")


@dataclass(frozen=True)
class VectorStoreFunnel:
    """The funnel's settings and steps around a vector store's own search (the adapters run that).

    Args:
        encoder: the model side: full vectors and their prefixes.
        shortlist_factor, shortlist_size: the shortlist width, as for ``MRLIndex``.
        vector_key: the metadata key holding each document's full vector.
        vector_dtype: ``"float16"`` or ``"float32"`` for the stored full vectors.
    """

    encoder: MRLEncoder
    shortlist_factor: int = DEFAULT_SHORTLIST_FACTOR
    shortlist_size: int | None = None
    vector_key: str = VECTOR_KEY
    vector_dtype: VectorDtype = "float16"

    def __post_init__(self) -> None:
        check_positive_int(self.shortlist_factor, "shortlist_factor")
        check_shortlist_size(self.shortlist_size)
        if self.vector_dtype not in VECTOR_DTYPES:
            raise ValueError(f"vector_dtype must be one of {list(VECTOR_DTYPES)}, got {self.vector_dtype!r}")

    def shortlist_width(self, k: int) -> int:
        """Candidates to ask the store for, for ``k`` results: ``max(k * shortlist_factor, shortlist_size)``."""
        return shortlist_width(check_positive_int(k, "k"), self.shortlist_factor, self.shortlist_size)

    def encode_documents(
        self, texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[list[float]]]:
        """Each text encoded once: copies of ``metadatas`` carrying the full vector, and the prefixes
        (the vectors for the store)."""
        full = self.encoder.encode_documents(texts)
        stored = [self.with_vector(metadata, vector) for metadata, vector in zip(metadatas, full)]
        return stored, self.encoder.prefix(full).tolist()

    def with_vector(self, metadata: Mapping[str, Any], vector: np.ndarray) -> dict[str, Any]:
        return {**metadata, self.vector_key: vector_to_text(vector, self.vector_dtype)}

    def without_vector(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """What a result's metadata returns: the stored full vector left out."""
        return {key: value for key, value in metadata.items() if key != self.vector_key}

    def encode_query(self, texts: Sequence[str]) -> tuple[np.ndarray, list[float]]:
        """The full query vector (of one text, or the mean of several) and its prefix, for the store's search."""
        full = self.encoder.encode_query(texts)
        return full, self.encoder.prefix(full[None, :])[0].tolist()

    def rescore(
        self,
        query: np.ndarray,
        metadatas: Sequence[Mapping[str, Any]],
        names: Sequence[str],
        k: int,
        score_threshold: float | None,
        how_to_add: str,
    ) -> list[tuple[int, float]]:
        """``(position, score)`` of the ``k`` best of the store's shortlist (its results' ``metadatas``)
        by full-vector score, best first, those below ``score_threshold`` dropped; ``names`` name the
        results in errors and ``how_to_add`` says how to add documents that carry a full vector."""
        return rescore_stored(
            query,
            metadatas,
            names,
            k,
            vector_key=self.vector_key,
            dim=self.encoder.dim,
            score_threshold=score_threshold,
            how_to_add=how_to_add,
        )


def first_stage_embeddings(
    given: _E | None, own: Any, kind: type[_E], store: str, store_argument: str, argument: str
) -> _E:
    """The prefix embeddings (of class ``kind``) of a funnel over ``store``: ``given`` (the retriever's
    ``argument=``), else the store's ``own`` (set as its ``store_argument=``) when it is a ``kind``.
    Given both, they must keep the same dims."""
    name = kind.__name__
    found = own if isinstance(own, kind) else None
    if given is None:
        if found is None:
            raise ValueError(
                f"MRLVectorStoreRetriever needs the {name} of its first stage: create {store} with "
                f"{store_argument}={name}(...), or pass {argument}= ({store} has {type(own).__name__})"
            )
        return found
    if found is not None and found.search_dim != given.search_dim:  # type: ignore[attr-defined]
        raise ValueError(
            f"the prefix embeddings of {store} keep {found.search_dim} dims but {argument}= keeps "  # type: ignore[attr-defined]
            f"{given.search_dim}; use the same {name} for both"  # type: ignore[attr-defined]
        )
    return given
