"""What a framework retriever over an :class:`~.base.Index` does whatever the framework: build its
index from the retriever's options, load it from a folder, save it. The LangChain and LlamaIndex
``IndexRetriever`` classes mix this in; each adds its framework's documents or nodes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .base import Index
from .folder import saved_format

_R = TypeVar("_R", bound="IndexRetrieverMixin")


class IndexRetrieverMixin:
    """The index side of a retriever; the class takes ``index=`` and its own options as keywords."""

    index_class: ClassVar[type[Index]] = Index
    """The index the retriever searches (``ColBERTIndex``, ``MRLIndex``)."""
    engines: ClassVar[Mapping[str, type[Index]]] = {}
    """The same kind of index on other storage engines, by the name ``engine=`` takes
    (``{"faiss": MRLIndex, "qdrant": QdrantMRLIndex}``); empty: ``index_class`` alone."""

    @classmethod
    def index_classes(cls) -> tuple[type[Index], ...]:
        """Every index class the retriever accepts: ``index_class`` and the ``engines``' ones."""
        return tuple(dict.fromkeys([cls.index_class, *cls.engines.values()]))

    if TYPE_CHECKING:
        index: Index

        def __init__(self, **kwargs: Any) -> None: ...

    @classmethod
    def _new_index(cls, model: Any, options: dict[str, Any]) -> Index:
        """A new empty ``index_class(model, ...)``, taking out of ``options`` what is the index's: its
        settings (``nprobe``, ``search_dim``, ``shortlist_factor``, ``parts``...), ``model_kwargs``, and a
        dict ``index_kwargs``; what is left are the retriever's own options. An index that encodes
        without a model (BM25, hybrid) takes none."""
        index_class = cls._engine_class(options.pop("engine", None))
        names = index_class.build_settings | index_class.search_settings | {"model_kwargs"}
        if index_class is not cls.index_class:  # an engine's: where its collection lives
            names = names | ENGINE_OPTIONS
        index_options = {k: options.pop(k) for k in list(options) if k in names}
        index_options.update(options.pop("index_kwargs", None) or {})
        name = index_class.__name__
        if index_class.family is None:
            if model is not None:
                raise TypeError(f"{cls.__name__} builds a {name}, which encodes without a model; leave model out")
            return index_class(**index_options)
        if model is None:
            raise TypeError(f"{cls.__name__} needs the model that encodes the texts (model=...)")
        return index_class(model, **index_options)  # type: ignore[call-arg]

    @classmethod
    def _engine_class(cls, engine: str | None) -> type[Index]:
        if engine is None:
            return cls.index_class
        if engine not in cls.engines:
            offered = sorted(cls.engines) or ["none: it has one"]
            raise ValueError(f"{cls.__name__} has no engine {engine!r}; engines: {offered}")
        return cls.engines[engine]

    @classmethod
    def load(
        cls: type[_R],
        folder: str | os.PathLike[str],
        model: Any = None,
        *,
        model_kwargs: Mapping[str, Any] | None = None,
        index_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> _R:
        """A retriever over an index saved with :meth:`save` (the model recorded in it, unless ``model``
        is given); ``index_kwargs`` go to the index's ``load`` (search settings), ``kwargs`` to the retriever."""
        index_class = cls.index_class
        saved = saved_format(Path(folder))
        for candidate in cls.engines.values():  # the engine that wrote the folder reads it
            if getattr(candidate, "index_format", None) == saved:
                index_class = candidate
        index = index_class.load(folder, model, model_kwargs=model_kwargs, **dict(index_kwargs or {}))
        return cls(index=index, **kwargs)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to ``folder``; :meth:`load` reads it back."""
        return self.index.save(folder)


ENGINE_OPTIONS = frozenset({"path", "url", "api_key", "client", "collection", "shards", "replicas"})
"""The options of an engine-backed index that say where it lives (``QdrantIndex``'s)."""
