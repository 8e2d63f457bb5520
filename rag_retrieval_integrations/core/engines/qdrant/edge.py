"""``EdgeBackend``: a Qdrant Edge shard (``qdrant-edge-py``: the Qdrant engine in-process, no server) in a folder."""

from __future__ import annotations

import fcntl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .backend import Point, QdrantBackend
from .spec import Found, Search, Sparse, SparseField, VectorField, filter_conditions, plain_vector

INSTALL_HINT = "pip install 'rag-retrieval[qdrant]'"


def import_edge() -> Any:
    try:
        import qdrant_edge
    except ImportError:
        raise ImportError(f"the embedded Qdrant engine needs qdrant-edge-py: {INSTALL_HINT}") from None
    return qdrant_edge


class EdgeBackend(QdrantBackend):
    """A Qdrant Edge shard at ``path`` (a folder).

    The shard runs without a write-ahead log, and every write is flushed before it returns: durable
    at once, as a WAL would make it, but a shard opened later maps its segments from disk instead of
    replaying a log into memory (Qdrant Edge 0.9 replays the whole WAL at load: about 800 B per stored
    ColBERT token of anonymous memory in ``benchmarks/index_scale.py``, against none without it).
    """

    kind = "edge"

    def __init__(self, path: str | Path) -> None:
        self.qe = import_edge()
        self.path = Path(path)
        self._shard: Any = None
        self._lock_file: Any = None

    def _lock(self) -> None:
        """Hold an exclusive lock beside the shard while it is open: one shard has one writer (Qdrant's own
        lock is its WAL's, which this shard has not)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path.with_name(self.path.name + ".lock"), "a+")  # noqa: SIM115  (held until close)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(
                f"the Qdrant Edge shard at {self.path} is open in another index (here or in another process): "
                "close() that one first; one shard has one writer"
            ) from None
        self._lock_file = handle

    def open(self) -> None:
        if not self.exists():
            raise FileNotFoundError(f"no Qdrant Edge shard at {self.path}")
        self._lock()
        self._shard = self.qe.EdgeShard.load(str(self.path))

    def exists(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    @property
    def shard(self) -> Any:
        if self._shard is None:
            raise RuntimeError(f"no Qdrant Edge shard at {self.path} (closed, or not created)")
        return self._shard

    def create(self, fields: Mapping[str, VectorField | SparseField]) -> None:
        qe = self.qe
        vectors = {name: self._params(f) for name, f in fields.items() if isinstance(f, VectorField)}
        sparse = {
            name: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf if f.idf else None)
            for name, f in fields.items()
            if isinstance(f, SparseField)
        }
        self._lock()
        self.path.mkdir(parents=True, exist_ok=True)
        self._shard = qe.EdgeShard.create(
            str(self.path), qe.EdgeConfig(vectors=vectors or None, sparse_vectors=sparse or None, wal_enabled=False)
        )

    def _params(self, field: VectorField) -> Any:
        qe = self.qe
        quantization = None
        # codes stay in RAM (they are scanned); originals on disk are read only for what is rescored
        if field.quantization == "int8":
            quantization = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
        elif field.quantization == "binary":
            quantization = qe.BinaryQuantizationConfig(memory=qe.Memory.Pinned)
        return qe.EdgeVectorParams(
            size=field.size,
            distance=qe.Distance.Cosine if field.distance == "cosine" else qe.Distance.Dot,
            memory=qe.Memory.Cold if field.on_disk else None,
            multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if field.multivector else None,
            datatype=qe.VectorStorageDatatype.Float16
            if field.datatype == "float16"
            else qe.VectorStorageDatatype.Float32,
            quantization_config=quantization,
            # m=0: no graph (a multivector only rescores; a scan over codes finds its candidates)
            hnsw_config=qe.HnswIndexConfig(
                m=field.hnsw_m if field.hnsw else 0, ef_construct=field.hnsw_ef_construct, full_scan_threshold=10_000
            ),
        )

    def upsert(self, points: Sequence[Point]) -> None:
        qe = self.qe
        self.shard.update(
            qe.UpdateOperation.upsert_points(
                [
                    qe.Point(pid, {k: self._vector(v) for k, v in vectors.items()}, dict(payload))
                    for pid, vectors, payload in points
                ]
            )
        )
        self.shard.flush()  # no WAL: durable once flushed

    def delete(self, point_ids: Sequence[str]) -> None:
        self.shard.update(self.qe.UpdateOperation.delete_points(list(point_ids)))
        self.shard.flush()

    def retrieve(self, point_ids: Sequence[str], *, payload: bool = True) -> list[Found]:
        records = self.shard.retrieve(list(point_ids), with_payload=payload, with_vector=False)
        return [Found(str(r.id), 0.0, dict(r.payload or {})) for r in records]

    def scroll(self, offset: str | None, limit: int) -> tuple[list[Found], str | None]:
        records, next_offset = self.shard.scroll(self.qe.ScrollRequest(offset=offset, limit=limit, with_payload=True))
        found = [Found(str(r.id), 0.0, dict(r.payload or {})) for r in records]
        return found, None if next_offset is None else str(next_offset)

    def count(self) -> int:
        return int(self.shard.count(self.qe.CountRequest(exact=True)))

    def _filter(self, filter: Mapping[str, Any] | None) -> Any:
        qe = self.qe
        conditions = [
            qe.FieldCondition(key=key, match=qe.MatchValue(value) if how == "value" else qe.MatchAny(list(value)))
            for key, how, value in filter_conditions(filter)
        ]
        return qe.Filter(must=conditions) if conditions else None

    def _params_of(self, search: Search) -> Any:
        qe = self.qe
        quantization = None
        if search.oversampling is not None:
            quantization = qe.QuantizationSearchParams(rescore=True, oversampling=search.oversampling)
        return qe.SearchParams(hnsw_ef=search.hnsw_ef, exact=search.exact, quantization=quantization)

    def _request(self, search: Search, *, top: bool) -> Any:
        qe = self.qe
        prefetches = [self._request(p, top=False) for p in search.prefetches] or None
        if search.fusion == "rrf":
            query = qe.Fusion.Rrf(k=search.rrf_k, weights=None if search.weights is None else list(search.weights))
        elif search.fusion == "dbsf":
            query = qe.Fusion.Dbsf()
        else:
            query = qe.Query.Nearest(self._vector(search.vector), using=search.using)
        args = {
            "limit": search.limit,
            "query": query,
            "prefetches": prefetches,
            "params": self._params_of(search),
            "filter": self._filter(search.filter),
        }
        return qe.QueryRequest(**args, with_payload=True) if top else qe.Prefetch(**args)

    def query_batch(self, searches: Sequence[Search]) -> list[list[Found]]:
        if not searches:
            return []
        results = self.shard.query_batch(self.qe.QueryBatchRequest([self._request(s, top=True) for s in searches]))
        return [[Found(str(p.id), float(p.score), dict(p.payload or {})) for p in points] for points in results]

    def _vector(self, vector: Any) -> Any:
        return (
            self.qe.SparseVector(vector.indices, vector.values) if isinstance(vector, Sparse) else plain_vector(vector)
        )

    def optimize(self) -> None:
        self.shard.optimize()

    def flush(self) -> None:
        self.shard.flush()

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None
