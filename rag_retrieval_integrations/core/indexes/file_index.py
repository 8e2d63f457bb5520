"""``FileIndex``: an :class:`~.base.Index` whose documents and vectors live in this process, saved as files.

The base owns the documents (ids, texts, metadata, in row order), adding (an id already there is
replaced), deleting, lookups, and the template of :meth:`FileIndex.save` and :meth:`FileIndex.load`
(atomic, with a checked manifest; see ``folder.py``). A subclass holds only its vectors and its search,
through the hooks marked below: row ``i`` of its vectors belongs to document ``i``.
"""

from __future__ import annotations

import json
import os
import threading
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..options import check_score_threshold
from .base import Index
from .documents import (
    DOCUMENTS_FILE,
    IndexHit,
    documents_problem,
    read_documents,
    split_documents,
    write_documents,
)
from .folder import (
    CorruptIndexError,
    atomic_save,
    check_same_weights,
    folder_lock,
    model_record,
    read_manifest,
    verify_checksums,
    write_manifest,
)

_I = TypeVar("_I", bound="FileIndex")
Manifest = dict[str, Any]


class FileIndex(Index):
    """Documents (ids, texts, metadata) and their vectors in this process, saved to and loaded from a folder.

    Subclasses set the class attributes and implement the hooks; users call the public methods.
    """

    index_format: ClassVar[str]
    """The manifest's ``format``."""
    format_version: ClassVar[int] = 1
    manifest_keys: ClassVar[tuple[str, ...]]
    """Keys every manifest of this index holds (besides ``format``, ``format_version`` and ``files``)."""
    vector_files: ClassVar[tuple[str, ...]]
    """Files the vectors may be saved in; :attr:`required_files` of them are always there."""
    required_files: ClassVar[tuple[str, ...]]

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._metadatas: list[dict[str, Any]] = []
        self._row: dict[str, int] = {}

    # ---- the documents ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row

    @property
    def ids(self) -> list[str]:
        """Ids of the documents in the index, in row order (insertion order, less the deleted)."""
        with self._lock:
            return list(self._ids)

    def get(self, doc_id: str) -> IndexHit:
        """The stored text and metadata of a document (``score`` and ``rank`` are 0)."""
        with self._lock:
            row = self._row_of(doc_id)
            return IndexHit(doc_id, self._texts[row], dict(self._metadatas[row]))

    def _row_of(self, doc_id: str) -> int:
        if doc_id not in self._row:
            raise KeyError(f"no document with id {doc_id!r} in the index")
        return self._row[doc_id]

    # ---- adding and deleting ----------------------------------------------------------------

    def _store(self, texts: list[str], ids: list[str], metadatas: list[dict[str, Any]], vectors: Any) -> list[str]:
        if not texts:
            return []
        with self._lock:
            replaced = [i for i in ids if i in self._row]
            if replaced:
                self.delete(replaced)
            self._append_vectors(vectors)
            self._append_documents(texts, ids, metadatas)
        return ids

    def _append_documents(self, texts: list[str], ids: list[str], metadatas: list[dict[str, Any]]) -> None:
        """Give the documents the rows ``len(self)`` on (their vectors are stored; their ids are new)."""
        for doc_id, text, metadata in zip(ids, texts, metadatas):
            self._row[doc_id] = len(self._ids)
            self._ids.append(doc_id)
            self._texts.append(text)
            self._metadatas.append(metadata)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id; an id not in the index is a ``KeyError`` (nothing is removed then)."""
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise TypeError(f"ids must be a list of strings, got {type(ids).__name__}")
        with self._lock:
            missing = [i for i in ids if i not in self._row]
            if missing:
                raise KeyError(f"{len(missing)} id(s) not in the index, e.g. {missing[:3]}; nothing was deleted")
            gone = np.array(sorted({self._row[i] for i in ids}), dtype=np.int64)
            if not len(gone):
                return
            self._delete_vectors(gone)
            self._drop_documents(gone)

    def _drop_documents(self, rows: np.ndarray) -> None:
        """Remove the documents of ``rows`` (sorted, unique; their vectors are gone); the rows after them move up."""
        with self._lock:
            keep = np.ones(len(self._ids), dtype=bool)
            keep[rows] = False
            self._ids = [d for d, k in zip(self._ids, keep) if k]
            self._texts = [t for t, k in zip(self._texts, keep) if k]
            self._metadatas = [m for m, k in zip(self._metadatas, keep) if k]
            self._row = {doc_id: r for r, doc_id in enumerate(self._ids)}

    # ---- search -----------------------------------------------------------------------------

    def _hits(self, rows: Iterable[int], scores: Iterable[float], score_threshold: float | None) -> list[IndexHit]:
        """Hits of ``rows`` ranked in the order given (best first); rows ``-1`` (none) and scores below
        ``score_threshold`` are left out."""
        check_score_threshold(score_threshold)
        return [
            IndexHit(self._ids[r], self._texts[r], dict(self._metadatas[r]), float(s), rank)
            for rank, (r, s) in enumerate(zip(rows, scores), start=1)
            if r >= 0 and (score_threshold is None or s >= score_threshold)
        ]

    # ---- persistence ------------------------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to ``folder`` (created if needed; an index already there is replaced).

        The save is atomic: it is written into a temporary sibling folder, renamed into place once
        complete; a save cut short leaves the previous index as it was.
        """
        target = Path(folder)
        with self._lock, atomic_save(target, (*self.vector_files, DOCUMENTS_FILE)) as staging:
            files = self._save_vectors(staging)
            write_documents(staging / DOCUMENTS_FILE, self._ids, self._texts, self._metadatas)
            manifest = {
                "format": self.index_format,
                "format_version": self.format_version,
                "model": None
                if self.model is None
                else model_record(self._model_settings(), self.model.model_name_or_path),
                "num_documents": len(self),
                **self._manifest(),
            }
            write_manifest(staging, manifest, [*files, DOCUMENTS_FILE])
        return target

    @classmethod
    def load(
        cls: type[_I],
        folder: str | os.PathLike[str],
        model: Any = None,
        *,
        verify: bool = True,
        model_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> _I:
        """Open an index written by :meth:`save`.

        Args:
            folder: the index folder.
            model: the model to encode queries (and new documents) with; default: the model
                recorded in the manifest, loaded with its recorded settings. A model whose vectors
                do not fit the index (another dimension) is an error; one whose weights changed
                behind the recorded path is a ``CorruptIndexError``.
            verify: check every file's SHA-256 against the manifest (reads the whole index once).
            model_kwargs: options for ``Reranker(...)`` when the model is loaded from a path.
            **options: search settings overriding the saved ones (:attr:`search_settings`), and
                :attr:`read_options`.

        Raises:
            IndexNotFoundError: ``folder`` does not exist.
            CorruptIndexError: no valid manifest, or a file missing, truncated or changed.
        """
        cls._check_load_options(options)
        read = {k: v for k, v in options.items() if k in cls.read_options}
        search = {k: v for k, v in options.items() if k not in cls.read_options}
        folder = Path(folder)
        # a shared lock for the whole read: a save's swap (exclusive) waits, so the manifest and the
        # files read are of one save, never half of each
        with folder_lock(folder, shared=True):
            index, documents, vectors = cls._read(folder, model, model_kwargs, verify, read, search)
        index._ids, index._texts, index._metadatas = split_documents(documents)
        index._row = {doc_id: r for r, doc_id in enumerate(index._ids)}
        index._restore_vectors(vectors)
        return index

    @classmethod
    def _read(
        cls: type[_I],
        folder: Path,
        model: Any,
        model_kwargs: Mapping[str, Any] | None,
        verify: bool,
        read: dict[str, Any],
        search: dict[str, Any],
    ) -> tuple[_I, list[Any], Any]:
        """:meth:`load`'s reading and checks: the index (without documents), its documents and vectors."""
        manifest = read_manifest(
            folder,
            what=cls.described_as,
            writer=f"{cls.__name__}.save",
            index_format=cls.index_format,
            version=cls.format_version,
            keys=("model", "num_documents", *cls.manifest_keys),
            required_files=(*cls.required_files, DOCUMENTS_FILE),
        )
        cls._check_manifest(folder, manifest)
        settings = manifest["model"]
        model = cls._load_model(settings, model, model_kwargs)
        index = cls._from_manifest(folder, manifest, model, search)
        if index.model is not None:
            check_same_weights(settings or {}, index.model.model_name_or_path, folder)
        if verify:
            verify_checksums(folder, manifest)
        try:
            documents = read_documents(folder / DOCUMENTS_FILE)
            vectors = index._read_vectors(folder, manifest, **read)
        except (ValueError, OSError, RuntimeError, json.JSONDecodeError) as e:
            raise CorruptIndexError(f"{folder} holds an unreadable index file: {e}") from None
        problems = index._vector_problems(manifest, vectors)
        if problem := documents_problem(documents, manifest["num_documents"]):
            problems.append(problem)
        if problems:
            raise CorruptIndexError(f"{folder} is inconsistent: " + "; ".join(problems))
        return index, documents, vectors

    # ---- hooks: the vectors -----------------------------------------------------------------

    @abstractmethod
    def _append_vectors(self, vectors: Any) -> None:
        """Store the vectors of new documents, which get the rows ``len(self)`` on."""

    @abstractmethod
    def _delete_vectors(self, rows: np.ndarray) -> None:
        """Drop the vectors of ``rows`` (sorted, unique); the rows after them move up."""

    @abstractmethod
    def _model_settings(self) -> dict[str, Any]:
        """What the manifest records about the model (with one)."""

    @abstractmethod
    def _manifest(self) -> dict[str, Any]:
        """The manifest's entries on the vectors and the settings."""

    @abstractmethod
    def _save_vectors(self, folder: Path) -> list[str]:
        """Write the vectors into ``folder``; returns the names of the files written."""

    @classmethod
    def _check_manifest(cls, folder: Path, manifest: dict[str, Any]) -> None:
        """Refuse a manifest whose entries this index cannot use (beyond the keys, checked before); by default
        there is nothing more to check."""
        return None

    @classmethod
    @abstractmethod
    def _from_manifest(cls: type[_I], folder: Path, manifest: Manifest, model: Any, options: dict[str, Any]) -> _I:
        """An empty index with the saved settings (``options`` override the search ones) and the loaded
        ``model`` (``None``: an index of given vectors), refused if its vectors do not fit the manifest's."""

    @abstractmethod
    def _read_vectors(self, folder: Path, manifest: dict[str, Any], **read_options: Any) -> Any:
        """The saved vectors, as :meth:`_vector_problems` and :meth:`_restore_vectors` take them."""

    @abstractmethod
    def _vector_problems(self, manifest: dict[str, Any], vectors: Any) -> list[str]:
        """What does not match the manifest in the vectors read (nothing: ``[]``)."""

    @abstractmethod
    def _restore_vectors(self, vectors: Any) -> None:
        """Take the vectors read as this index's (the documents are set)."""
