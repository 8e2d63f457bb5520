"""The ``model`` field of the framework wrappers: a path, a hub id or an already loaded ranker.

The LangChain and LlamaIndex wrappers resolve that field here, so one loaded model can serve
several wrappers (a reranker in a LangChain chain and in a LlamaIndex query engine, say). A
loaded ranker is any :class:`~.core.models.ranker.Ranker`: a checkpoint family, a
``RemoteReranker``, or a user's own class.

Thread safety comes from the core layer, not from here: a checkpoint family scores one call at
a time (its lock, see ``BaseReranker``), so wrappers sharing a model from worker threads are safe.

``RerankerWrapper`` and ``EmbeddingWrapper`` hold the pydantic fields, loading and calls that the
LangChain and LlamaIndex classes share; each framework class adds its own base class and methods.
This module needs ``pydantic`` (which both frameworks depend on); the rest of ``core`` does not.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, PrivateAttr, field_serializer

from .core.models.embedding import EmbeddingModel
from .core.models.factory import Reranker
from .core.models.ranker import Ranker
from .core.options import check_score_threshold
from .core.results import RankedResults, RankResult

ModelSpec = str | Path | Ranker
"""What the wrappers' ``model`` field takes: a local folder, a hub id, or a loaded model."""

PositiveInt = Annotated[int, Field(strict=True, gt=0)]


def model_name(model: ModelSpec) -> str:
    """The path or hub id of ``model``, for serialization and instrumentation."""
    if isinstance(model, Ranker):
        return str(getattr(model, "model_name_or_path", None) or type(model).__name__)
    return os.fspath(model)


def load_reranker(
    model: ModelSpec, model_type: str | None = None, model_kwargs: Mapping[str, Any] | None = None
) -> Ranker:
    """A loaded ranker for the wrappers' ``model`` field.

    A path or hub id is loaded with ``Reranker(model, model_type, **model_kwargs)``; a loaded
    model is returned as it is, and then ``model_type`` and ``model_kwargs`` must not ask for
    something else (they would be silently ignored).
    """
    if isinstance(model, Ranker):
        if model_type is not None and model_type != model.model_type:
            raise ValueError(
                f"model_type={model_type!r} does not match the loaded model, a {model.model_type!r} model; "
                "leave model_type unset when passing a loaded model"
            )
        if model_kwargs:
            raise ValueError(
                f"model_kwargs={dict(model_kwargs)!r} only apply when loading a model from a path or hub id; "
                f"got an already loaded {type(model).__name__}: set these options when loading it"
            )
        return model
    if isinstance(model, (str, os.PathLike)):
        return Reranker(model, model_type, **dict(model_kwargs or {}))
    raise TypeError(f"model must be a path, a hub id or a loaded Reranker, got {type(model).__name__}: {model!r:.80}")


def load_embedding_model(
    model: ModelSpec, model_kwargs: Mapping[str, Any] | None = None, **embedding_options: Any
) -> EmbeddingModel:
    """A loaded embedding model for the embeddings wrappers' ``model`` field.

    ``embedding_options`` (``truncate_dim``, ``query_prompt``, ``document_prompt``) left at
    ``None`` are not passed; with a loaded model, those that are set must equal the model's own.
    """
    options = {k: v for k, v in embedding_options.items() if v is not None}
    if isinstance(model, Ranker):
        if not isinstance(model, EmbeddingModel):
            raise TypeError(
                f"model must be an embedding model (model_type='embedding'), "
                f"got a {model.model_type!r} model: {model!r}"
            )
        load_reranker(model, None, model_kwargs)  # rejects model_kwargs
        for name, value in options.items():
            if getattr(model, name) != value:
                raise ValueError(
                    f"{name}={value!r} differs from the loaded model's {name}={getattr(model, name)!r}; "
                    f"set {name} when loading the model, or leave it unset here"
                )
        return model
    loaded = load_reranker(model, "embedding", {**dict(model_kwargs or {}), **options})
    assert isinstance(loaded, EmbeddingModel)
    return loaded


def rerank(
    model: Ranker,
    query: str,
    texts: Sequence[str],
    *,
    top_n: int | None = None,
    score_threshold: float | None = None,
    normalize: bool = False,
    batch_size: int | None = None,
) -> list[RankResult]:
    """``model.rank``, then ``score_threshold`` and ``top_n``.

    The threshold applies to the score as reported (after the sigmoid when ``normalize``);
    a document scoring exactly the threshold is kept. Ties keep the input order.
    """
    ranked = model.rank(query, texts, top_k=top_n, normalize=normalize, batch_size=batch_size)
    return _above(ranked, score_threshold)


def _above(ranked: RankedResults, score_threshold: float | None) -> list[RankResult]:
    if check_score_threshold(score_threshold) is None:
        return list(ranked)
    return [r for r in ranked if r.score >= score_threshold]


async def arerank(
    model: Ranker, query: str, texts: Sequence[str], *, top_n: int | None = None, **options: Any
) -> list[RankResult]:
    """:func:`rerank` through ``model.arank``: a worker thread for a local model, so that the event
    loop keeps running meanwhile; a native async HTTP call for a ``RemoteReranker``."""
    threshold = options.pop("score_threshold", None)
    return _above(await model.arank(query, texts, top_k=top_n, **options), threshold)


def embed(model: EmbeddingModel, texts: Sequence[str], *, is_query: bool, batch_size: int | None = None) -> np.ndarray:
    """``encode_queries``/``encode_documents`` of ``model``."""
    encode = model.encode_queries if is_query else model.encode_documents
    return encode(texts, batch_size=batch_size)


async def aembed(
    model: EmbeddingModel, texts: Sequence[str], *, is_query: bool, batch_size: int | None = None
) -> np.ndarray:
    """:func:`embed` in a worker thread."""
    return await asyncio.to_thread(embed, model, texts, is_query=is_query, batch_size=batch_size)


class _ModelField(BaseModel):
    model: ModelSpec = Field(description="A checkpoint folder, a hub id, or a model loaded with Reranker(...).")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Options for Reranker(...) when loading from a path: device, dtype, max_length, ...",
    )

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    @field_serializer("model")
    def _serialize_model(self, model: ModelSpec) -> str:
        return model_name(model)


class RerankerWrapper(_ModelField):
    """The fields and model calls of the framework rerankers (LangChain compressor, LlamaIndex postprocessor)."""

    model_type: str | None = Field(
        default=None, description="The model family when loading from a path (None: detected from the checkpoint)."
    )
    top_n: PositiveInt | None = Field(default=3, description="How many to return, best first (None: all).")
    score_threshold: FiniteFloat | None = Field(
        default=None, description="Drop what scores below this (the score as reported: after the sigmoid if normalize)."
    )
    normalize: bool = Field(default=False, description="Report sigmoid(raw score), in (0, 1), not the raw score.")
    batch_size: PositiveInt | None = Field(
        default=None, description="Model inputs per forward pass (None: the model's own batch_size)."
    )

    _reranker: Ranker = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._reranker = load_reranker(self.model, self.model_type, self.model_kwargs)

    @property
    def reranker(self) -> Ranker:
        """The loaded model, to share it with other wrappers or call ``rank`` on it directly."""
        return self._reranker

    def _rank(self, query: str, texts: Sequence[str]) -> list[RankResult]:
        return rerank(self._reranker, query, texts, **self._rank_options())

    async def _arank(self, query: str, texts: Sequence[str]) -> list[RankResult]:
        return await arerank(self._reranker, query, texts, **self._rank_options())

    def _rank_options(self) -> dict[str, Any]:
        return {
            "top_n": self.top_n,
            "score_threshold": self.score_threshold,
            "normalize": self.normalize,
            "batch_size": self.batch_size,
        }


class EmbeddingWrapper(_ModelField):
    """The fields and model calls of the framework embeddings (LangChain's and LlamaIndex's)."""

    query_prompt: str | None = Field(
        default=None, description="Text put before each query (None: the checkpoint's own 'query' prompt, if any)."
    )
    document_prompt: str | None = Field(
        default=None, description="Text put before each document (None: the checkpoint's 'document' prompt, if any)."
    )
    truncate_dim: PositiveInt | None = Field(
        default=None, description="Keep the first truncate_dim dimensions (Matryoshka models); None: all."
    )

    _model: EmbeddingModel = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._model = load_embedding_model(
            self.model,
            self.model_kwargs,
            truncate_dim=self.truncate_dim,
            query_prompt=self.query_prompt,
            document_prompt=self.document_prompt,
        )

    @property
    def embedding_model(self) -> EmbeddingModel:
        """The loaded model, to share it with other wrappers."""
        return self._model

    def _embed(self, texts: Sequence[str], is_query: bool, batch_size: int | None) -> list[list[float]]:
        return embed(self._model, texts, is_query=is_query, batch_size=batch_size).tolist()

    async def _aembed(self, texts: Sequence[str], is_query: bool, batch_size: int | None) -> list[list[float]]:
        return (await aembed(self._model, texts, is_query=is_query, batch_size=batch_size)).tolist()
