"""Where a Qdrant-engine index lives: an Edge shard in a folder (the default), or a collection reached
through ``qdrant-client`` (a URL, or a client the user built), and how the manifest records it."""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import QdrantBackend
from .edge import EdgeBackend
from .remote import ClientBackend, import_client

SHARD_FOLDER = "shard"
DEFAULT_COLLECTION = "rag-retrieval"


@dataclass
class Location:
    """How to open the collection again: ``{"engine": "edge"}`` (the shard is in the index folder) or
    ``{"engine": "client", "url": ..., "collection": ...}`` (never the API key)."""

    engine: str
    url: str | None = None
    collection: str | None = None

    def record(self) -> dict[str, Any]:
        return {"engine": self.engine, "url": self.url, "collection": self.collection}


@dataclass
class Connection:
    """An open collection: the backend, where it lives, and the index folder (``None`` on a server)."""

    backend: QdrantBackend
    location: Location
    path: Path | None


def connect(
    path: str | os.PathLike[str] | None,
    *,
    url: str | None,
    api_key: str | None,
    client: Any,
    collection: str | None,
    shards: int | None,
    replicas: int | None,
) -> Connection:
    """The backend for an index's arguments, its :class:`Location`, and the index folder (``None`` for a
    collection on a server). Embedded without ``path``: a temporary folder, removed with the connection.
    What the connection opened (a shard, a client it built) is closed when it is garbage-collected."""
    if url is not None or client is not None:
        if path is not None:
            raise ValueError("give path= (an embedded Qdrant Edge index) or url=/client= (a Qdrant server), not both")
        if url is not None and client is not None:
            raise ValueError("give url= or client=, not both")
        own_client = client is None
        if own_client:
            client = import_client().QdrantClient(url=url, api_key=api_key)
        elif api_key is not None:
            raise ValueError("api_key= goes with url=; a client= carries its own credentials")
        name = collection or DEFAULT_COLLECTION
        backend = ClientBackend(client, name, shards=shards, replicas=replicas, owns_client=own_client)
        connection = Connection(backend, Location("client", url, name), None)
        weakref.finalize(connection, backend.close)
        return connection
    if collection is not None or shards is not None or replicas is not None or api_key is not None:
        raise ValueError("collection=, shards=, replicas= and api_key= are for a Qdrant server (url= or client=)")
    temporary = path is None
    folder = Path(tempfile.mkdtemp(prefix="rag-retrieval-qdrant-")) if temporary else Path(path)
    backend = EdgeBackend(folder / SHARD_FOLDER)
    connection = Connection(backend, Location("edge"), folder)
    weakref.finalize(connection, _release, backend, folder if temporary else None)
    return connection


def _release(backend: QdrantBackend, temporary: Path | None) -> None:
    """Close the shard, then remove its folder if it was a temporary one."""
    backend.close()
    if temporary is not None:
        shutil.rmtree(temporary, ignore_errors=True)


def reconnect(folder: Path, record: dict[str, Any], *, api_key: str | None, client: Any) -> Connection:
    """The backend of a saved index (its manifest's ``location``)."""
    if record.get("engine") == "edge":
        if client is not None or api_key is not None:
            raise ValueError(
                f"the index at {str(folder)!r} is embedded (Qdrant Edge); client= and api_key= do not apply"
            )
        return connect(folder, url=None, api_key=None, client=None, collection=None, shards=None, replicas=None)
    url = None if client is not None else record.get("url")
    if client is None and url is None:
        raise ValueError(
            f"the index at {str(folder)!r} lives on a Qdrant server reached through a client the manifest cannot "
            "record; load it with client=QdrantClient(...)"
        )
    opened = connect(
        None,
        url=url,
        api_key=api_key,
        client=client,
        collection=record.get("collection"),
        shards=None,
        replicas=None,
    )
    return Connection(opened.backend, Location("client", record.get("url"), record.get("collection")), None)
