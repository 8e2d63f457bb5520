"""What a framework retriever over an :class:`~.base.Index` does whatever the framework: build its
index from the retriever's options, load it from a folder, save it. The LangChain and LlamaIndex
``IndexRetriever`` classes mix this in; each adds its framework's documents or nodes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .base import Index

_R = TypeVar("_R", bound="IndexRetrieverMixin")


class IndexRetrieverMixin:
    """The index side of a retriever; the class takes ``index=`` and its own options as keywords."""

    index_class: ClassVar[type[Index]] = Index
    """The index the retriever searches (``ColBERTIndex``, ``MRLIndex``)."""

    if TYPE_CHECKING:
        index: Index

        def __init__(self, **kwargs: Any) -> None: ...

    @classmethod
    def _new_index(cls, model: Any, options: dict[str, Any]) -> Index:
        """A new empty ``index_class(model, ...)``, taking out of ``options`` what is the index's: its
        settings (``nprobe``, ``search_dim``, ``shortlist_factor``, ``parts``...), ``model_kwargs``, and a
        dict ``index_kwargs``; what is left are the retriever's own options. An index that encodes
        without a model (BM25, hybrid) takes none."""
        names = cls.index_class.build_settings | cls.index_class.search_settings | {"model_kwargs"}
        index_options = {k: options.pop(k) for k in list(options) if k in names}
        index_options.update(options.pop("index_kwargs", None) or {})
        name = cls.index_class.__name__
        if cls.index_class.family is None:
            if model is not None:
                raise TypeError(f"{cls.__name__} builds a {name}, which encodes without a model; leave model out")
            return cls.index_class(**index_options)
        if model is None:
            raise TypeError(f"{cls.__name__} needs the model that encodes the texts (model=...)")
        return cls.index_class(model, **index_options)  # type: ignore[call-arg]

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
        index = cls.index_class.load(folder, model, model_kwargs=model_kwargs, **dict(index_kwargs or {}))
        return cls(index=index, **kwargs)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to ``folder``; :meth:`load` reads it back."""
        return self.index.save(folder)
