"""``MRLEncoder``: the model side of the Matryoshka funnel (full vectors and their prefixes), shared by
``MRLIndex`` and the vector-store funnel; and the Matryoshka dims a checkpoint was trained with."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..models.base import BaseReranker
from ..models.checkpoint import CheckpointInfo, read_checkpoint
from ..models.embedding import EmbeddingModel
from ..options import check_positive_int
from ..text.inputs import check_docs
from .build_encoding import encode_in_chunks
from .index_model import load_index_model
from .mrl_vectors import check_similarity, full_vectors, prefix_vectors

logger = logging.getLogger(__name__)

ModelLike = Union[EmbeddingModel, str, "os.PathLike[str]"]

MRL_MODEL_OPTIONS: Mapping[str, str] = {
    "max_length": "max_length",
    "truncate_dim": "truncate_dim",
    "query_prompt": "query_prompt",
    "document_prompt": "document_prompt",
}
"""The ``Reranker`` options an MRL index (either engine) reloads its recorded embedding model with."""


def load_embedding_model(model: ModelLike, model_kwargs: Mapping[str, Any] | None = None) -> EmbeddingModel:
    return load_index_model(model, model_kwargs, EmbeddingModel, "embedding model")


def trained_matryoshka_dims(model: EmbeddingModel | CheckpointInfo | str | os.PathLike[str]) -> list[int]:
    """The Matryoshka dims a checkpoint was trained with, ascending (``[]`` if it records none).

    Read from our metadata file (``rag_retrieval.json``, key ``"matryoshka_dims"``, written by
    ``rag-retrieval-train embedding --mrl_dims``).
    """
    if isinstance(model, BaseReranker):
        info = model.checkpoint
    elif isinstance(model, CheckpointInfo):
        info = model
    else:
        info = read_checkpoint(model)
    dims = info.metadata.get("matryoshka_dims") or []
    if not isinstance(dims, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(
            f"{info.path!r}: matryoshka_dims in rag_retrieval.json must be positive integers, got {dims!r}"
        )
    return sorted(set(dims))


def check_search_dim(search_dim: Any, dim: int) -> int:
    if not isinstance(search_dim, int) or isinstance(search_dim, bool) or not 0 < search_dim <= dim:
        raise ValueError(f"search_dim must be an integer from 1 to the vectors' dimension {dim}, got {search_dim!r}")
    return search_dim


class MRLEncoder:
    """A bi-encoder's full vectors and their first ``search_dim`` dims: the model side of the funnel.

    Args:
        model: an embedding checkpoint (path or hub id) or a loaded ``Reranker(..., model_type="embedding")``.
            Its "full" vectors are what it encodes (``truncate_dim`` included, if it was loaded with one).
        search_dim: dims of the shortlist stage; default: the smallest Matryoshka dim the
            checkpoint was trained with (see :func:`trained_matryoshka_dims`), else all of them.
        batch_size: texts per forward pass (default: the model's).
        show_progress_bar: progress bar while encoding documents (default: the model's setting).
        model_kwargs: options for ``Reranker(...)`` when ``model`` is a path.
    """

    def __init__(
        self,
        model: ModelLike,
        *,
        search_dim: int | None = None,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = load_embedding_model(model, model_kwargs)
        self.dim = self.model.embedding_dim
        self.similarity = check_similarity(self.model.similarity)
        self.matryoshka_dims = trained_matryoshka_dims(self.model)
        self.search_dim = self._resolve_search_dim(search_dim)
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.show_progress_bar = show_progress_bar

    def _resolve_search_dim(self, search_dim: int | None) -> int:
        if search_dim is not None:
            return check_search_dim(search_dim, self.dim)
        usable = [d for d in self.matryoshka_dims if d <= self.dim]
        if usable:
            return usable[0]
        logger.warning(
            "%r records no Matryoshka dims (rag_retrieval.json has no matryoshka_dims: not trained with mrl_dims); "
            "the shortlist uses all %d dims, which makes the funnel an exhaustive search: pass search_dim= to "
            "search a prefix",
            self.model.model_name_or_path,
            self.dim,
        )
        return self.dim

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Full document vectors (float32, unit rows for cosine), encoded in chunks under a progress bar."""
        texts = check_docs(texts, "texts")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = encode_in_chunks(
            self.model,
            texts,
            lambda chunk: full_vectors(
                self.model.encode_documents(chunk, batch_size=self.batch_size),
                self.dim,
                self.similarity,
                "the model's vectors",
            ),
            show_progress_bar=self.show_progress_bar,
            batch_size=self.batch_size,
            desc="Encoding",
        )
        return np.ascontiguousarray(np.concatenate(chunks))

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Full query vectors (float32, unit rows for cosine), with the model's query prompt."""
        vectors = self.model.encode_queries(check_docs(queries, "queries"), batch_size=self.batch_size)
        return full_vectors(vectors, self.dim, self.similarity, "the model's vectors")

    def encode_query(self, texts: Sequence[str]) -> np.ndarray:
        """One full query vector from one or more texts (LlamaIndex's ``embedding_strs``, e.g. HyDE's):
        their mean, unit for cosine; of one text, its vector."""
        vectors = self.encode_queries(texts)
        return vectors[0] if len(vectors) == 1 else full_vectors(vectors.mean(axis=0), self.dim, self.similarity)[0]

    def prefix(self, vectors: np.ndarray) -> np.ndarray:
        """The shortlist vectors: the first ``search_dim`` dims, re-normalized for cosine."""
        return prefix_vectors(vectors, self.search_dim, self.similarity)

    def settings(self) -> dict[str, Any]:
        """What the index manifest records about the model."""
        return {
            "model": self.model.model_name_or_path,
            "dim": self.dim,
            "similarity": self.similarity,
            "truncate_dim": self.model.truncate_dim,
            "max_length": self.model.max_length,
            "query_prompt": self.model.query_prompt,
            "document_prompt": self.model.document_prompt,
            "matryoshka_dims": self.matryoshka_dims,
        }

    def __repr__(self) -> str:
        return f"MRLEncoder({self.model.model_name_or_path!r}, dim={self.dim}, search_dim={self.search_dim})"


def check_model_fits(model: EmbeddingModel, manifest: dict[str, Any], folder: Path) -> None:
    """A model loading an index must give vectors of the index's dimension and similarity."""
    dim, similarity = model.embedding_dim, model.similarity
    built_with = (manifest["model"] or {}).get("model")
    if dim != manifest["dim"]:
        raise ValueError(
            f"model {model.model_name_or_path!r} gives {dim}-dim vectors but the index at {str(folder)!r} holds "
            f"{manifest['dim']}-dim ones (built with {built_with!r}); load it with a model of that dimension"
        )
    if similarity != manifest["similarity"]:
        raise ValueError(
            f"model {model.model_name_or_path!r} scores by {similarity!r} but the index at {str(folder)!r} holds "
            f"vectors for {manifest['similarity']!r} (built with {built_with!r})"
        )


def mrl_settings(
    model: ModelLike | None,
    *,
    dim: int | None,
    search_dim: int | None,
    similarity: str | None,
    batch_size: int | None,
    show_progress_bar: bool | None,
    model_kwargs: Mapping[str, Any] | None,
    index_name: str,
) -> tuple[MRLEncoder | None, int, int, str]:
    """An MRL index's encoder (``None`` without a model) and its ``dim``, ``search_dim`` and ``similarity``:
    the model's, checked against those given; without a model, those given (``dim`` required)."""
    encoder = None
    if model is not None:
        encoder = MRLEncoder(
            model,
            search_dim=search_dim,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            model_kwargs=model_kwargs,
        )
        name = encoder.model.model_name_or_path
        if dim is not None and dim != encoder.dim:
            raise ValueError(
                f"dim={dim} differs from the {encoder.dim} dims that model {name!r} gives; leave dim unset"
            )
        if similarity is not None and similarity != encoder.similarity:
            raise ValueError(f"similarity={similarity!r} differs from model {name!r}'s {encoder.similarity!r}")
        dim, search_dim, similarity = encoder.dim, encoder.search_dim, encoder.similarity
    elif dim is None:
        raise ValueError(f"an {index_name} without a model needs dim= (the dimension of the vectors you will add)")
    elif model_kwargs:
        raise ValueError("model_kwargs only apply with a model")
    dim = check_positive_int(dim, "dim")
    search_dim = check_search_dim(dim if search_dim is None else search_dim, dim)
    return encoder, dim, search_dim, check_similarity("cosine" if similarity is None else similarity)


class MRLEncoding:
    """The model side of an MRL index (the FAISS one and the Qdrant one): encoding texts and queries,
    checking given vectors, recording the model. The index sets ``encoder``, ``dim`` and ``similarity``."""

    encoder: MRLEncoder | None
    dim: int
    similarity: str

    @property
    def model(self) -> EmbeddingModel | None:
        """The embedding model (``None`` for an index of given vectors)."""
        return None if self.encoder is None else self.encoder.model

    def check_encodes_queries(self) -> None:
        """A ``ValueError`` for an index of given vectors (no model): a retriever over it could not
        encode a query. The framework retrievers call it when they are built."""
        if self.encoder is None:
            raise ValueError(
                f"index has no model to encode queries with; create or load the {type(self).__name__} with model="
            )

    def _require_encoder(self, what: str) -> MRLEncoder:
        if self.encoder is None:
            raise ValueError(f"this {type(self).__name__} has no model to {what}; create or load it with model=")
        return self.encoder

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Full vectors of ``texts`` with the index's model (float32, unit rows for cosine), as :meth:`add_vectors` takes."""
        return self._require_encoder("encode texts (or pass embeddings=)").encode_documents(texts)

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Full query vectors with the index's model, ``(queries, dim)``."""
        return self._require_encoder("encode queries").encode_queries(queries)

    def _check_vectors(self, vectors: Any, n: int) -> np.ndarray:
        checked = full_vectors(vectors, self.dim, self.similarity)
        if len(checked) != n:
            raise ValueError(f"embeddings has {len(checked)} rows for {n} texts; give one per text")
        return checked

    def _model_settings(self) -> dict[str, Any]:
        return self._require_encoder("record").settings()
