"""Move an index from the FAISS engine to the Qdrant engine: the same documents, ids, metadata and vectors
(nothing is encoded again), in chunks, so that memory holds the source index and one chunk.

Exact search (``exhaustive=True``) on the result equals the source's exact search (ids, and scores
within 1e-5; ColBERT with ``vector_dtype="float32"``, else within about 1e-3).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ...indexes.colbert import ColBERTIndex
from ...indexes.file_index import FileIndex
from ...indexes.folder import saved_format
from ...indexes.mrl import MRLIndex
from .colbert import QdrantColBERTIndex
from .index import QdrantIndex
from .mrl import QdrantMRLIndex


def convert_index(
    source: FileIndex | str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    show_progress_bar: bool = True,
    **options: Any,
) -> QdrantIndex:
    """A Qdrant-engine copy of an ``MRLIndex`` or ``ColBERTIndex`` (an index, or the folder of a saved one).

    Args:
        source: the FAISS-engine index or its folder (loaded with the model its manifest records).
        path: the new embedded index's folder (saved there when done); ``None`` with ``url=``/``client=``
            in ``options`` for a Qdrant server.
        show_progress_bar: a bar over the documents copied.
        **options: the Qdrant index's settings (``quantization``, ``on_disk``, ``url``, ``collection``...);
            the vectors' own (``dim``, ``search_dim``, ``similarity``, ``vector_dtype`` of MRL) follow the source.
    """
    if not isinstance(source, FileIndex):
        source = _load_any(Path(source))
    if isinstance(source, MRLIndex):
        settings = {"search_dim": source.search_dim, "vector_dtype": source.vector_dtype}
        if source.model is None:
            settings.update(dim=source.dim, similarity=source.similarity)
        target: QdrantIndex = QdrantMRLIndex(source.model, path, **{**settings, **options})
    elif isinstance(source, ColBERTIndex):
        target = QdrantColBERTIndex(source.model, path, **options)
    else:
        raise TypeError(f"convert_index copies an MRLIndex or a ColBERTIndex, got {type(source).__name__}")
    ids = source.ids
    bar = tqdm(total=len(ids), desc="Converting", unit="doc", disable=not show_progress_bar)
    for chunk in _chunks(ids, target.chunk_size):
        docs = [source.get(doc_id) for doc_id in chunk]
        vectors = _vectors_of(source, chunk)
        target.add_vectors([d.text for d in docs], vectors, ids=chunk, metadatas=[d.metadata for d in docs])
        bar.update(len(chunk))
    bar.close()
    if path is not None:
        target.save(path)
    else:
        target.optimize()
    return target


def _vectors_of(source: FileIndex, ids: list[str]) -> Any:
    if isinstance(source, MRLIndex):
        return np.stack([source.vector(doc_id) for doc_id in ids])
    assert isinstance(source, ColBERTIndex)
    return [source.token_vectors(doc_id) for doc_id in ids]


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _load_any(folder: Path) -> FileIndex:
    """The saved FAISS-engine index at ``folder``, whichever kind its manifest names."""
    saved = saved_format(folder)
    for kind in (MRLIndex, ColBERTIndex):
        if saved == kind.index_format:
            return kind.load(folder)
    raise ValueError(
        f"{str(folder)!r} is not a saved MRLIndex or ColBERTIndex (manifest format {saved!r}); only those convert"
    )
