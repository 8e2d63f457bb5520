"""``ClientBackend``: a collection on a Qdrant server or cluster through the official ``qdrant-client``.

The same calls reach a single server, a sharded and replicated cluster, Qdrant Cloud, or the client's
own local mode (``QdrantClient(":memory:")`` / ``QdrantClient(path=...)``, which the tests use).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .backend import Point, QdrantBackend
from .edge import INSTALL_HINT
from .spec import Found, Search, Sparse, SparseField, VectorField, filter_conditions, plain_vector


def import_client() -> Any:
    try:
        import qdrant_client
    except ImportError:
        raise ImportError(f"a Qdrant server or cluster is reached through qdrant-client: {INSTALL_HINT}") from None
    return qdrant_client


class ClientBackend(QdrantBackend):
    """The collection ``collection`` through ``client`` (a ``qdrant_client.QdrantClient``).

    ``shards``/``replicas`` set the collection's sharding and replication when it is created (a cluster);
    ``None`` leaves the server's defaults. ``owns_client``: :meth:`close` closes the client (one this
    project built from a URL; a client the user gave stays theirs to close).
    """

    kind = "client"

    def __init__(
        self,
        client: Any,
        collection: str,
        *,
        shards: int | None = None,
        replicas: int | None = None,
        owns_client: bool = False,
    ) -> None:
        self.models = import_client().models
        self.client = client
        self.collection = collection
        self.shards, self.replicas = shards, replicas
        self.owns_client = owns_client

    def exists(self) -> bool:
        return bool(self.client.collection_exists(self.collection))

    def open(self) -> None:
        if not self.exists():
            raise FileNotFoundError(f"no collection {self.collection!r} on the Qdrant server")

    def create(self, fields: Mapping[str, VectorField | SparseField]) -> None:
        m = self.models
        self.client.create_collection(
            self.collection,
            vectors_config={name: self._params(f) for name, f in fields.items() if isinstance(f, VectorField)},
            sparse_vectors_config={
                name: m.SparseVectorParams(modifier=m.Modifier.IDF if f.idf else None)
                for name, f in fields.items()
                if isinstance(f, SparseField)
            }
            or None,
            shard_number=self.shards,
            replication_factor=self.replicas,
        )

    def _params(self, field: VectorField) -> Any:
        m = self.models
        quantization = None
        if field.quantization == "int8":
            quantization = m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99, always_ram=True)
            )
        elif field.quantization == "binary":
            quantization = m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True))
        return m.VectorParams(
            size=field.size,
            distance=m.Distance.COSINE if field.distance == "cosine" else m.Distance.DOT,
            on_disk=field.on_disk,
            multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM)
            if field.multivector
            else None,
            datatype=m.Datatype.FLOAT16 if field.datatype == "float16" else m.Datatype.FLOAT32,
            quantization_config=quantization,
            hnsw_config=m.HnswConfigDiff(m=field.hnsw_m if field.hnsw else 0, ef_construct=field.hnsw_ef_construct),
        )

    def upsert(self, points: Sequence[Point]) -> None:
        m = self.models
        self.client.upsert(
            self.collection,
            [
                m.PointStruct(id=pid, vector={k: self._vector(v) for k, v in vectors.items()}, payload=dict(payload))
                for pid, vectors, payload in points
            ],
            wait=True,
        )

    def delete(self, point_ids: Sequence[str]) -> None:
        self.client.delete(self.collection, points_selector=self.models.PointIdsList(points=list(point_ids)), wait=True)

    def retrieve(self, point_ids: Sequence[str], *, payload: bool = True) -> list[Found]:
        records = self.client.retrieve(self.collection, list(point_ids), with_payload=payload, with_vectors=False)
        return [Found(str(r.id), 0.0, dict(r.payload or {})) for r in records]

    def scroll(self, offset: str | None, limit: int) -> tuple[list[Found], str | None]:
        records, next_offset = self.client.scroll(self.collection, offset=offset, limit=limit, with_payload=True)
        return [Found(str(r.id), 0.0, dict(r.payload or {})) for r in records], (
            None if next_offset is None else str(next_offset)
        )

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def _filter(self, filter: Mapping[str, Any] | None) -> Any:
        m = self.models
        conditions = [
            m.FieldCondition(
                key=key, match=m.MatchValue(value=value) if how == "value" else m.MatchAny(any=list(value))
            )
            for key, how, value in filter_conditions(filter)
        ]
        return m.Filter(must=conditions) if conditions else None

    def _params_of(self, search: Search) -> Any:
        m = self.models
        quantization = None
        if search.oversampling is not None:
            quantization = m.QuantizationSearchParams(rescore=True, oversampling=search.oversampling)
        return m.SearchParams(hnsw_ef=search.hnsw_ef, exact=search.exact, quantization=quantization)

    def _vector(self, vector: Any) -> Any:
        if isinstance(vector, Sparse):
            return self.models.SparseVector(indices=vector.indices, values=vector.values)
        return plain_vector(vector)

    def _query(self, search: Search) -> Any:
        m = self.models
        if search.fusion == "rrf":
            weights = None if search.weights is None else list(search.weights)
            return m.RrfQuery(rrf=m.Rrf(k=search.rrf_k, weights=weights))
        if search.fusion == "dbsf":
            return m.FusionQuery(fusion=m.Fusion.DBSF)
        return self._vector(search.vector)

    def _prefetch(self, search: Search) -> Any:
        return self.models.Prefetch(
            query=self._query(search),
            using=search.using,
            limit=search.limit,
            params=self._params_of(search),
            filter=self._filter(search.filter),
            prefetch=[self._prefetch(p) for p in search.prefetches] or None,
        )

    def query_batch(self, searches: Sequence[Search]) -> list[list[Found]]:
        if not searches:
            return []
        m = self.models
        requests = [
            m.QueryRequest(
                query=self._query(s),
                using=s.using,
                limit=s.limit,
                params=self._params_of(s),
                filter=self._filter(s.filter),
                prefetch=[self._prefetch(p) for p in s.prefetches] or None,
                with_payload=True,
            )
            for s in searches
        ]
        responses = self.client.query_batch_points(self.collection, requests)
        return [[Found(str(p.id), float(p.score), dict(p.payload or {})) for p in r.points] for r in responses]

    def close(self) -> None:
        if self.owns_client:
            self.client.close()
