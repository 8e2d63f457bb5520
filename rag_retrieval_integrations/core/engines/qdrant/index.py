"""``QdrantIndex``: an :class:`~...indexes.base.Index` whose documents and vectors live in a Qdrant collection.

Each document is one Qdrant point: its id is a UUID5 of the document id (so adding an id again
overwrites it), its payload ``{"doc_id", "text", "metadata"}``, its vectors named by the index kind
(:class:`~.mrl.QdrantMRLIndex`: ``full`` and ``prefix``; :class:`~.colbert.QdrantColBERTIndex`: ``colbert``).
Nothing about the documents is held in this process, so an index is as large as the engine allows.

Where the collection lives (see :mod:`.connection`):

- **embedded** (default): a Qdrant Edge shard in the index folder (``path``, or a temporary one):
  ``folder/manifest.json`` and ``folder/shard/``. Every write is flushed to the shard before it
  returns (:class:`~.edge.EdgeBackend`), so a build killed midway keeps every chunk it wrote;
  :meth:`QdrantIndex.load` opens it again and :meth:`QdrantIndex.add_stream` goes on where it stopped.
- **a Qdrant server or cluster**: ``url=`` (and ``api_key=``) or ``client=`` (a ``QdrantClient``);
  ``collection``, ``shards`` and ``replicas`` name and spread the collection. :meth:`QdrantIndex.save`
  then writes only the manifest (never the API key).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ...indexes.base import Index
from ...indexes.documents import IndexHit, check_ids, check_metadatas
from ...indexes.folder import (
    MANIFEST_FILE,
    CorruptIndexError,
    atomic_save,
    check_same_weights,
    folder_lock,
    model_record,
    read_manifest,
)
from ...options import check_score_threshold
from ...text.inputs import check_docs
from .backend import QdrantBackend
from .connection import SHARD_FOLDER, Connection, connect, reconnect
from .spec import ID_KEY, METADATA_KEY, TEXT_KEY, Found, Search, SparseField, VectorField, point_id

_Q = TypeVar("_Q", bound="QdrantIndex")
DEFAULT_CHUNK_SIZE = 512
"""Documents encoded and written per step of :meth:`QdrantIndex.add` and :meth:`QdrantIndex.add_stream`."""


class QdrantIndex(Index):
    """The Qdrant engine under the :class:`~...indexes.base.Index` API; subclasses name the vectors and the search.

    Args (every subclass's):
        path: the folder of an embedded index (created; must not hold one already: :meth:`load` opens those).
            ``None`` without ``url``/``client``: a temporary folder, removed with the index.
        url, api_key: a Qdrant server or cluster.
        client: a ``qdrant_client.QdrantClient`` to use (a cluster, Qdrant Cloud, or its local mode).
        collection: the collection's name on the server (default ``"rag-retrieval"``).
        shards, replicas: the collection's shard number and replication factor when it is created.
        chunk_size: documents encoded and written per step when adding.
    """

    index_format: ClassVar[str]
    format_version: ClassVar[int] = 1
    read_options: ClassVar[frozenset[str]] = frozenset({"api_key", "client"})

    def _connect(
        self,
        path: Any,
        *,
        url: Any,
        api_key: Any,
        client: Any,
        collection: Any,
        shards: Any,
        replicas: Any,
        connection: Connection | None,
    ) -> None:
        """Create the collection of a new index, or take the open one :meth:`load` passes as ``connection``
        (subclasses call it once their settings are set)."""
        self._lock = threading.RLock()
        if connection is not None:
            if any(v is not None for v in (path, url, api_key, client, collection, shards, replicas)):
                raise ValueError("connection= is an open collection: give no path, url, client or collection with it")
            self._set_connection(connection)
            return
        self._set_connection(
            connect(
                path, url=url, api_key=api_key, client=client, collection=collection, shards=shards, replicas=replicas
            )
        )
        if self._backend.exists():
            where = str(self.path) if self.path is not None else f"collection {self._location.collection!r}"
            raise ValueError(f"{where} already holds an index; open it with {type(self).__name__}.load(...)")
        self._backend.create(self._fields())
        if self.path is not None:
            self._write_manifest(self.path)  # at once: a build killed before any save can still be loaded

    def _set_connection(self, connection: Connection) -> None:
        self._connection = connection  # held: the shard or client closes when the index is collected
        self._backend, self._location, self.path = connection.backend, connection.location, connection.path

    def close(self) -> None:
        """Close the collection now (an embedded shard's files, a client this index opened); the index is
        unusable afterwards. Without it, they close when the index is garbage-collected."""
        self._backend.close()

    @property
    def backend(self) -> QdrantBackend:
        """The Qdrant collection (an Edge shard or a client's collection)."""
        return self._backend

    @property
    def location(self) -> dict[str, Any]:
        """Where the collection lives, as the manifest records it."""
        return self._location.record()

    # ---- the documents ----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._backend.count()

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and bool(self._backend.retrieve([point_id(doc_id)], payload=False))

    @property
    def ids(self) -> list[str]:
        """Ids of the documents, in the engine's order (by point id, not by insertion)."""
        return [found.payload[ID_KEY] for found in self._scroll()]

    def _scroll(self, page: int = 1024) -> Iterator[Found]:
        offset: str | None = None
        while True:
            found, offset = self._backend.scroll(offset, page)
            yield from found
            if offset is None:
                return

    def get(self, doc_id: str) -> IndexHit:
        found = self._backend.retrieve([point_id(doc_id)]) if isinstance(doc_id, str) else []
        if not found:
            raise KeyError(f"no document with id {doc_id!r} in the index")
        return _hit(found[0], 0)

    # ---- adding and deleting ----------------------------------------------------------------

    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Encode and add documents ``chunk_size`` at a time (only one chunk's vectors in memory); returns their ids.
        An id already in the index replaces that document. Documents added before an error stay added."""
        texts, ids, metadatas = self._checked_documents(texts, ids, metadatas)
        for start in range(0, len(texts), self.chunk_size):
            part = slice(start, start + self.chunk_size)
            self._store(texts[part], ids[part], metadatas[part], self.encode_documents(texts[part]))
        return ids

    def add_stream(
        self,
        documents: Iterable[tuple[str, str] | tuple[str, str, Mapping[str, Any] | None]],
        *,
        skip_existing: bool = True,
    ) -> int:
        """Add ``(id, text)`` or ``(id, text, metadata)`` tuples from any iterable (a generator over a corpus
        on disk), ``chunk_size`` at a time: memory stays bounded whatever the corpus size.

        With ``skip_existing`` (default), documents whose id the index already holds are neither encoded
        nor written: a build that was killed resumes by running the same call again. Returns how many
        documents were encoded and written.
        """
        added = 0
        iterator = iter(documents)
        while chunk := list(itertools.islice(iterator, self.chunk_size)):
            for item in chunk:
                if not isinstance(item, tuple) or len(item) not in (2, 3):
                    raise TypeError(f"documents must be (id, text) or (id, text, metadata) tuples, got {item!r:.80}")
            ids = check_ids([item[0] for item in chunk], len(chunk))
            texts = check_docs([item[1] for item in chunk], "texts")
            metadatas = check_metadatas([item[2] if len(item) == 3 else None for item in chunk], len(chunk))
            if skip_existing:
                present = {f.point_id for f in self._backend.retrieve([point_id(i) for i in ids], payload=False)}
                keep = [j for j, doc_id in enumerate(ids) if point_id(doc_id) not in present]
                ids, texts, metadatas = [ids[j] for j in keep], [texts[j] for j in keep], [metadatas[j] for j in keep]
            if texts:
                self._store(texts, ids, metadatas, self.encode_documents(texts))
                added += len(texts)
        return added

    def _store(self, texts: list[str], ids: list[str], metadatas: list[dict[str, Any]], vectors: Any) -> list[str]:
        if not texts:
            return []
        with self._lock:
            for start in range(0, len(texts), self.chunk_size):
                stop = min(start + self.chunk_size, len(texts))
                self._backend.upsert(
                    [
                        (
                            point_id(ids[i]),
                            self._point_vectors(vectors, i),
                            {ID_KEY: ids[i], TEXT_KEY: texts[i], METADATA_KEY: metadatas[i]},
                        )
                        for i in range(start, stop)
                    ]
                )
        return ids

    def delete(self, ids: Sequence[str]) -> None:
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise TypeError(f"ids must be a list of strings, got {type(ids).__name__}")
        if not ids:
            return
        wanted = {point_id(i): i for i in ids if isinstance(i, str)}
        with self._lock:
            present = {f.point_id for f in self._backend.retrieve(list(wanted), payload=False)}
            missing = [i for i in ids if not isinstance(i, str) or point_id(i) not in present]
            if missing:
                raise KeyError(f"{len(missing)} id(s) not in the index, e.g. {missing[:3]}; nothing was deleted")
            self._backend.delete(list(wanted))

    # ---- search -----------------------------------------------------------------------------

    def _run(
        self, searches: Sequence[Search], score_threshold: float | None, scales: Sequence[float] | None = None
    ) -> list[list[IndexHit]]:
        """The hits of each search, best first; scores times ``scales[i]`` (a ColBERT query mean), those
        below ``score_threshold`` left out."""
        check_score_threshold(score_threshold)
        results = self._backend.query_batch(searches)
        hits = []
        for i, found in enumerate(results):
            scale = 1.0 if scales is None else scales[i]
            scored = [(f, f.score * scale) for f in found]
            kept = [(f, s) for f, s in scored if score_threshold is None or s >= score_threshold]
            hits.append([_hit(f, rank, s) for rank, (f, s) in enumerate(kept, start=1)])
        return hits

    # ---- persistence ------------------------------------------------------------------------

    def optimize(self) -> None:
        """Build the engine's indexes (HNSW graphs, quantized codes) over what was added. An embedded index
        builds them on :meth:`save`; a server builds them in the background."""
        with self._lock:
            self._backend.optimize()

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Make every write durable and write the manifest to ``folder``.

        Embedded, ``folder`` the index's own: the shard is optimized and flushed, the manifest rewritten.
        Embedded, another folder: a copy of the shard goes there (this index stays on its own folder).
        On a server: ``folder`` receives the manifest alone (the server keeps the data).
        """
        target = Path(folder)
        with self._lock:
            if self.path is None:
                with atomic_save(target, ()) as staging:
                    self._write_manifest(staging)
                return target
            self._backend.optimize()
            self._backend.flush()
            if target.resolve() == self.path.resolve():
                with folder_lock(target, shared=False):
                    self._write_manifest(target)
                return target
            with atomic_save(target, (SHARD_FOLDER, f"{SHARD_FOLDER}.lock")) as staging:
                shutil.copytree(self.path / SHARD_FOLDER, staging / SHARD_FOLDER)
                self._write_manifest(staging)
            return target

    def _write_manifest(self, folder: Path) -> None:
        manifest = {
            "format": self.index_format,
            "format_version": self.format_version,
            "model": None
            if self.model is None
            else model_record(self._model_settings(), self.model.model_name_or_path),
            "location": self._location.record(),
            "fields": {name: vars(field) for name, field in self._fields().items()},
            **self._manifest(),
        }
        # written beside, then renamed over: a reader (or a kill) never meets half a manifest. Qdrant
        # checks its own files, so the manifest lists none.
        staging = folder / f".{MANIFEST_FILE}.tmp"
        staging.write_text(json.dumps({**manifest, "files": {}}, indent=2) + "\n", encoding="utf-8")
        staging.replace(folder / MANIFEST_FILE)

    @classmethod
    def load(
        cls: type[_Q],
        folder: str | os.PathLike[str],
        model: Any = None,
        *,
        verify: bool = True,
        model_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> _Q:
        """Open an index: its folder (embedded), or the manifest :meth:`save` wrote for one on a server.

        Args:
            model: the model to encode queries with; default: the one the manifest records.
            verify: unused (Qdrant checks its own files); taken so that every index loads alike.
            **options: search settings overriding the saved ones; ``api_key=`` (a server's) or
                ``client=`` (a ``QdrantClient``, for a collection the manifest has no URL of).
        """
        cls._check_load_options(options)
        folder = Path(folder)
        manifest = read_manifest(
            folder,
            what=cls.described_as,
            writer=f"{cls.__name__}.save",
            index_format=cls.index_format,
            version=cls.format_version,
            keys=("model", "location", "fields", *cls.manifest_keys),
            required_files=(),
        )
        model = cls._load_model(manifest["model"], model, model_kwargs)
        if model is not None:
            check_same_weights(manifest["model"] or {}, model.model_name_or_path, folder)
        search = {k: v for k, v in options.items() if k in cls.search_settings}
        connection = reconnect(
            folder, manifest["location"], api_key=options.get("api_key"), client=options.get("client")
        )
        try:
            connection.backend.open()
        except FileNotFoundError:
            raise CorruptIndexError(
                f"{str(folder)!r} is {cls.described_as} whose Qdrant collection is gone ({manifest['location']})"
            ) from None
        index = cls._from_manifest(manifest, model, search, connection)
        fields = {name: vars(field) for name, field in index._fields().items()}
        if fields != manifest["fields"]:
            raise CorruptIndexError(f"{folder}: the manifest's vector fields {manifest['fields']} are not {fields}")
        return index

    # ---- hooks ------------------------------------------------------------------------------

    manifest_keys: ClassVar[tuple[str, ...]]
    chunk_size: int

    @abstractmethod
    def _fields(self) -> dict[str, VectorField | SparseField]:
        """The collection's named dense and sparse vectors."""

    @abstractmethod
    def _point_vectors(self, vectors: Any, i: int) -> dict[str, Any]:
        """The named vectors of document ``i`` of ``vectors`` (as :meth:`encode_documents` gives them)."""

    @abstractmethod
    def _model_settings(self) -> dict[str, Any]:
        """What the manifest records about the model."""

    @abstractmethod
    def _manifest(self) -> dict[str, Any]:
        """The manifest's entries on the vectors and settings (:attr:`manifest_keys`)."""

    @classmethod
    @abstractmethod
    def _from_manifest(
        cls: type[_Q], manifest: dict[str, Any], model: Any, options: dict[str, Any], connection: Connection
    ) -> _Q:
        """The index with the saved settings (``options`` override the search ones) over ``connection``."""


def _hit(found: Found, rank: int, score: float = 0.0) -> IndexHit:
    payload = found.payload
    return IndexHit(payload[ID_KEY], payload[TEXT_KEY], dict(payload.get(METADATA_KEY) or {}), float(score), rank)
