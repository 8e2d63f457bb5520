"""``QdrantBackend``: the few collection calls an index makes, implemented once per Qdrant client.

- :class:`~.edge.EdgeBackend`: Qdrant Edge, the engine in-process over a folder (``qdrant-edge-py``);
- :class:`~.remote.ClientBackend`: ``qdrant-client``, to a Qdrant server or cluster (or the client's local mode).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from .spec import Found, Search, SparseField, VectorField

Point = tuple[str, Mapping[str, Any], Mapping[str, Any]]
"""A point to write: its id, its vectors by field name, its payload."""


class QdrantBackend(ABC):
    """One Qdrant collection (or Edge shard): create, write, read, query."""

    kind: str
    """``"edge"`` or ``"client"``, as the manifest records it."""

    @abstractmethod
    def create(self, fields: Mapping[str, VectorField | SparseField]) -> None:
        """Create the collection with these named dense and sparse vectors (it must not exist)."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the collection exists."""

    @abstractmethod
    def open(self) -> None:
        """Open the existing collection (``FileNotFoundError`` if there is none)."""

    @abstractmethod
    def upsert(self, points: Sequence[Point]) -> None:
        """Write points; a point id already there is overwritten."""

    @abstractmethod
    def delete(self, point_ids: Sequence[str]) -> None:
        """Remove points by id."""

    @abstractmethod
    def retrieve(self, point_ids: Sequence[str], *, payload: bool = True) -> list[Found]:
        """The points of these ids that exist (any order)."""

    @abstractmethod
    def scroll(self, offset: str | None, limit: int) -> tuple[list[Found], str | None]:
        """Up to ``limit`` points from ``offset`` (``None``: the first) in id order, with the next offset."""

    @abstractmethod
    def count(self) -> int:
        """The number of points (exact)."""

    @abstractmethod
    def query_batch(self, searches: Sequence[Search]) -> list[list[Found]]:
        """Each search's best points, best first, with their payloads."""

    def optimize(self) -> None:
        """Build the segments' indexes (HNSW, quantization) now; a server does it in the background."""
        return None

    def flush(self) -> None:
        """Make every write durable."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release the collection (files, connections)."""
