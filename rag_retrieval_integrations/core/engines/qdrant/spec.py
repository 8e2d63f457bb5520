"""What an index asks of Qdrant, in Qdrant's terms but in neither client's types.

The embedded engine (Qdrant Edge, ``qdrant_edge``) and the client engine (``qdrant_client``) have
their own Python models of the same collection; :mod:`.edge` and :mod:`.remote` each translate these
few records, so the indexes never see either.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Distance = Literal["cosine", "dot"]
Quantization = Literal["int8", "binary"]
QUANTIZATIONS: tuple[str, ...] = ("int8", "binary")
Datatype = Literal["float32", "float16"]

TEXT_KEY = "text"
METADATA_KEY = "metadata"
ID_KEY = "doc_id"
"""Payload keys: the document's id (Qdrant's point ids are UUIDs or integers), text and metadata."""

_POINT_NAMESPACE = uuid.UUID("6f2a4d55-6a0c-4c1e-9e25-1b2f8f7e6a01")


def point_id(doc_id: str) -> str:
    """The Qdrant point id of a document id: a UUID5 of it, so that an id always maps to the same point
    (an add of an id already there overwrites it, as the other indexes replace)."""
    return str(uuid.uuid5(_POINT_NAMESPACE, doc_id))


@dataclass(frozen=True)
class VectorField:
    """One named vector of the collection.

    Args:
        size: dimensions (of each token vector for a multivector).
        distance: ``"cosine"`` (Qdrant normalizes) or ``"dot"``.
        multivector: a list of vectors per point, compared by MaxSim (ColBERT).
        datatype: how the original vectors are stored.
        quantization: ``"int8"`` (scalar) or ``"binary"`` codes kept in RAM for a first pass that
            the original vectors rescore; ``None``: none.
        on_disk: the original vectors are memory-mapped from disk, not held in RAM.
        hnsw: build an HNSW graph for it (``False``: searched by scan, or only used to rescore).
        hnsw_m, hnsw_ef_construct: the graph's degree and build breadth.
    """

    size: int
    distance: Distance
    multivector: bool = False
    datatype: Datatype = "float32"
    quantization: Quantization | None = None
    on_disk: bool = False
    hnsw: bool = True
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100


@dataclass(frozen=True)
class SparseField:
    """One named sparse vector of the collection (term id -> weight); ``idf``: Qdrant weighs each query
    term by its inverse document frequency over the collection (``Modifier.IDF``), which makes BM25 of
    documents stored as their BM25 term-frequency parts."""

    idf: bool = True


@dataclass(frozen=True)
class Sparse:
    """A sparse vector: term ids and their weights."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class Search:
    """One query stage: the ``limit`` best points by the vector ``using``, among those of ``prefetches``
    (first stages) when there are any, else among all points (that pass ``filter``).

    ``fusion`` (``"rrf"``, reciprocal rank with ``rrf_k`` and per-prefetch ``weights``; ``"dbsf"``,
    Qdrant's distribution-based score fusion) ranks the prefetches' union instead of a vector
    (``vector`` and ``using`` are then ``None``). ``exact`` scans every point (no HNSW, no
    quantization); ``oversampling`` searches the quantized codes for ``limit * oversampling`` points
    and rescores them with the original vectors; ``hnsw_ef`` is HNSW's search breadth.
    """

    vector: Any
    using: str | None
    limit: int
    prefetches: tuple[Search, ...] = ()
    fusion: str | None = None
    rrf_k: int = 60
    weights: tuple[float, ...] | None = None
    exact: bool = False
    oversampling: float | None = None
    hnsw_ef: int | None = None
    filter: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Found:
    """A point a query returned, or one read by id: its id, score (0 when read) and payload."""

    point_id: str
    score: float
    payload: dict[str, Any]


def check_oversampling(oversampling: Any) -> float:
    """Quantized codes looked at per result: a number >= 1."""
    if isinstance(oversampling, bool) or not isinstance(oversampling, (int, float)) or not oversampling >= 1:
        raise ValueError(f"oversampling must be a number >= 1, got {oversampling!r}")
    return float(oversampling)


def plain_vector(vector: Any) -> Any:
    """A dense vector (or token vectors) as the lists of floats both clients take."""
    return vector.tolist() if hasattr(vector, "tolist") else vector


def filter_conditions(filter: Mapping[str, Any] | None) -> list[tuple[str, str, Any]]:
    """``filter`` (a dict of metadata key -> value, or -> list of values, any of which matches) as
    ``(payload key, "value" | "any", value)`` conditions, all of which must hold.

    Keys name metadata fields (``{"lang": "en"}`` matches documents added with ``metadata={"lang": "en"}``);
    a dotted key reaches into nested metadata. Values are strings, integers or booleans (Qdrant's
    exact matches); a float or ``None`` is refused rather than matched approximately.
    """
    if filter is None:
        return []
    if not isinstance(filter, Mapping):
        raise TypeError(f"filter must be a dict of metadata key -> value(s), got {type(filter).__name__}")
    conditions = []
    for key, value in filter.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"filter keys must be non-empty strings, got {key!r}")
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else None
        for v in values if values is not None else [value]:
            if not isinstance(v, (str, int)):
                raise ValueError(f"filter[{key!r}] must be a string, integer or boolean (or a list of them), got {v!r}")
        if values is not None and not values:
            raise ValueError(f"filter[{key!r}] is an empty list: no document could match")
        conditions.append((f"{METADATA_KEY}.{key}", "value" if values is None else "any", value))
    return conditions
