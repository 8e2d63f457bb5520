"""``Index``: the API of every searchable index, whatever stores it.

Two kinds implement it:

- :class:`~.file_index.FileIndex` (``file_index.py``): documents and vectors in this process, saved as files
  in a folder (``ColBERTIndex``, ``MRLIndex``, ``BM25Index``, ``SparseIndex``, ``HybridIndex``);
- :class:`~rag_retrieval_integrations.core.engines.qdrant.index.QdrantIndex`: documents and vectors in a Qdrant
  collection, embedded (Qdrant Edge, a folder) or on a Qdrant server or cluster.

The base checks the inputs once (texts, ids, metadata, queries, ``k``) and leaves the storage to them.
Retrievers, the eval CLI and mining use only this API.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..models.base import BaseReranker
from ..options import check_positive_int
from ..text.inputs import check_docs, check_query
from .documents import IndexHit, check_ids, check_metadatas
from .index_model import load_index_model

_I = TypeVar("_I", bound="Index")


class Index(ABC):
    """Documents (ids, texts, metadata) and their vectors: searchable, added to, deleted from, saved and loaded.

    Subclasses set the class attributes and implement the abstract methods; users call the public ones.
    """

    described_as: ClassVar[str]
    """The index in messages: ``"a ColBERT index"``."""
    build_settings: ClassVar[frozenset[str]]
    """Constructor arguments fixed once the index is built (a loaded index keeps the saved ones)."""
    search_settings: ClassVar[frozenset[str]]
    """Constructor arguments :meth:`load` may override (``**options``)."""
    read_options: ClassVar[frozenset[str]] = frozenset()
    """Further ``load`` options: how the index is opened (``MRLIndex``: ``mmap``; Qdrant: ``api_key``...)."""
    family: ClassVar[type[BaseReranker] | None]
    """The model family the index encodes with; ``model_noun`` names it in errors (``"ColBERT model"``).
    ``None``: the index encodes without a model (``BM25Index``'s analyzer, ``HybridIndex``'s parts)."""
    model_noun: ClassVar[str]
    saved_model_options: ClassVar[Mapping[str, str]] = {}
    """``Reranker`` options to reload the recorded model with, by the manifest's ``model`` key holding each."""

    model: BaseReranker | None
    """The model that encodes the texts (``None`` for an index of given vectors)."""

    # ---- the documents ----------------------------------------------------------------------

    @abstractmethod
    def __len__(self) -> int:
        """How many documents the index holds."""

    @abstractmethod
    def __contains__(self, doc_id: object) -> bool:
        """Whether a document has this id."""

    @property
    @abstractmethod
    def ids(self) -> list[str]:
        """Ids of the documents in the index."""

    @abstractmethod
    def get(self, doc_id: str) -> IndexHit:
        """The stored text and metadata of a document (``score`` and ``rank`` are 0); ``KeyError`` if none."""

    # ---- adding and deleting ----------------------------------------------------------------

    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Encode and add documents; returns their ids.

        Args:
            texts: the documents (each cut at the model's ``max_length`` tokens: split long
                documents first, e.g. with a text splitter).
            ids: one unique string per document (default: random UUIDs). An id already in the
                index replaces that document.
            metadatas: one JSON-serializable dict (or ``None``) per document, returned with it.
        """
        texts, ids, metadatas = self._checked_documents(texts, ids, metadatas)
        return self._store(texts, ids, metadatas, self.encode_documents(texts) if texts else None)

    def add_vectors(
        self,
        texts: Sequence[str],
        vectors: Any,
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """:meth:`add` for documents whose vectors are already computed (by this index's
        :meth:`encode_documents`, e.g. on another machine): one entry of ``vectors`` per text."""
        texts, ids, metadatas = self._checked_documents(texts, ids, metadatas)
        return self._store(texts, ids, metadatas, self._check_vectors(vectors, len(texts)))

    @staticmethod
    def _checked_documents(
        texts: Sequence[str], ids: Sequence[str] | None, metadatas: Sequence[Mapping[str, Any] | None] | None
    ) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        texts = check_docs(texts, "texts")
        return texts, check_ids(ids, len(texts)), check_metadatas(metadatas, len(texts))

    @abstractmethod
    def _store(self, texts: list[str], ids: list[str], metadatas: list[dict[str, Any]], vectors: Any) -> list[str]:
        """Store checked documents and their vectors (an id already there is replaced); returns ``ids``."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id; an id not in the index is a ``KeyError`` (nothing is removed then)."""

    # ---- search -----------------------------------------------------------------------------

    def search(self, query: str, k: int = 10, **options: Any) -> list[IndexHit]:
        """The ``k`` best documents for ``query``, best first (fewer if the index is smaller).

        ``options`` are those of :meth:`search_by_vectors`: ``score_threshold`` (drop documents
        scoring below it; one scoring exactly it is kept) and the index's own.
        """
        return self.search_many([check_query(query)], k, **options)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, **options: Any) -> list[list[IndexHit]]:
        """:meth:`search` for several queries, encoded in one batched pass."""
        queries = check_docs(queries, "queries")
        check_positive_int(k, "k")
        if not queries:
            return []
        return self.search_by_vectors(self.encode_queries(queries), k, **options)

    # ---- persistence ------------------------------------------------------------------------

    @abstractmethod
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to ``folder``; :meth:`load` opens it again."""

    @classmethod
    @abstractmethod
    def load(
        cls: type[_I],
        folder: str | os.PathLike[str],
        model: Any = None,
        *,
        verify: bool = True,
        model_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> _I:
        """Open an index written by :meth:`save` (``model``: default, the one recorded; ``options``: search
        settings overriding the saved ones, and :attr:`read_options`)."""

    @classmethod
    def _check_load_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse ``load`` options that are neither search settings nor read options."""
        unknown = sorted(set(options) - cls.search_settings - cls.read_options)
        if unknown:
            allowed = sorted(cls.search_settings | cls.read_options)
            raise TypeError(f"{cls.__name__}.load got unexpected option(s) {unknown}; it takes {allowed}")

    @classmethod
    def _load_model(
        cls, recorded: Mapping[str, Any] | None, model: Any, model_kwargs: Mapping[str, Any] | None
    ) -> BaseReranker | None:
        """The model a loaded index encodes with: ``model`` if given, else the one the manifest recorded
        (``recorded``), with its recorded :attr:`saved_model_options`; ``None`` for an index of given vectors."""
        if model is None and recorded is not None:
            saved = {option: recorded.get(key) for option, key in cls.saved_model_options.items()}
            model_kwargs = {**{k: v for k, v in saved.items() if v is not None}, **dict(model_kwargs or {})}
            model = recorded["model"]
        if model is None:
            return None
        if cls.family is None:
            raise TypeError(f"{cls.__name__} encodes without a model; load it without model=")
        return load_index_model(model, model_kwargs, cls.family, cls.model_noun)

    # ---- the vectors ------------------------------------------------------------------------

    @abstractmethod
    def encode_documents(self, texts: Sequence[str]) -> Any:
        """The vectors of ``texts`` as :meth:`add` stores them (what :meth:`add_vectors` takes)."""

    @abstractmethod
    def encode_queries(self, queries: Sequence[str]) -> Any:
        """The vectors of ``queries`` as :meth:`search_by_vectors` takes them."""

    @abstractmethod
    def search_by_vectors(
        self, query_vectors: Any, k: int = 10, *, score_threshold: float | None = None, **options: Any
    ) -> list[list[IndexHit]]:
        """:meth:`search_many` for queries already encoded by :meth:`encode_queries`."""

    @abstractmethod
    def _check_vectors(self, vectors: Any, n: int) -> Any:
        """``vectors`` given to :meth:`add_vectors` for ``n`` texts, checked and as :meth:`_append_vectors` takes them."""
