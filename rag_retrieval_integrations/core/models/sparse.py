"""Learned sparse family: a sentence-transformers ``SparseEncoder`` (SPLADE, inference-free SPLADE) scoring
by the dot product of vocabulary-sized term-weight vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InvalidCheckpointError
from .base import Loaded, ModelCard, ModelPath
from .checkpoint import METADATA_FILE, CheckpointInfo, checkpoint_info, st_model_type
from .loading import (
    capped_max_length,
    check_tokenizer_files,
    detected_model_type,
    encoder_position_limit,
    refuse_all_zero_weights,
    transformer_folder,
)
from .registry import register_model_type
from .st_encoder import SentenceTransformersEncoder

Architecture = Literal["splade", "inference-free"]


def sparse_rows(encoded: Any, vocab_size: int) -> Any:
    """sentence-transformers' sparse COO tensor of encodings as a SciPy CSR matrix ``(texts, vocab)``, float32."""
    from scipy import sparse

    if encoded is None:
        return sparse.csr_matrix((0, vocab_size), dtype=np.float32)
    coo = encoded.coalesce().cpu()
    rows, cols = coo.indices().numpy()
    values = coo.values().float().numpy()
    return sparse.csr_matrix((values, (rows, cols)), shape=tuple(coo.shape), dtype=np.float32)


@register_model_type("sparse")
class SparseModel(SentenceTransformersEncoder):
    """A learned sparse retriever (SPLADE and its kin): each text becomes a weight per vocabulary term,
    and a query and a document score by the dot product of their weights (the model's similarity).

    Loads sentence-transformers ``SparseEncoder`` checkpoints: SPLADE (``MLMTransformer`` +
    ``SpladePooling``, e.g. ``naver/splade-v3``) and inference-free SPLADE, whose queries go through
    a ``Router`` to a ``SparseStaticEmbedding`` (e.g.
    ``opensearch-project/opensearch-neural-sparse-encoding-doc-v3-distill``). Encoding is
    sentence-transformers' own (``encode_query``/``encode_document``); :meth:`encode_documents`
    returns SciPy CSR matrices, which :class:`~rag_retrieval_integrations.core.SparseIndex` stores.

    Args:
        query_prompt, document_prompt: text put before queries/documents; by default the
            checkpoint's own ``"query"``/``"document"`` prompts, if it has them.
        max_active_dims: keep at most this many non-zero terms per text (``None``: the checkpoint's own setting).
        **options: the common options of :class:`BaseReranker`.

    Detected from a ``config_sentence_transformers.json`` whose ``model_type`` is ``"SparseEncoder"``.
    """

    detection_priority = 40
    card = ModelCard(
        "sentence-transformers", "feature-extraction", ("sentence-transformers", "sparse-encoder", "splade")
    )

    @classmethod
    def matches(cls, info: CheckpointInfo) -> bool:
        """A sentence-transformers ``SparseEncoder`` folder."""
        return st_model_type(info) == "SparseEncoder"

    @classmethod
    def for_training(
        cls,
        base_model: ModelPath,
        *,
        architecture: Architecture = "splade",
        pooling_strategy: Literal["max", "sum"] = "max",
        query_prompt: str = "",
        document_prompt: str = "",
        **options: Any,
    ) -> SparseModel:
        """A sparse encoder to train on ``base_model``: a ``SparseEncoder`` checkpoint as it is, or a
        masked LM (BERT, DistilBERT...) with a new SPLADE head.

        ``architecture="splade"`` is ``MLMTransformer`` + ``SpladePooling(pooling_strategy)`` for queries
        and documents alike; ``"inference-free"`` routes queries to a ``SparseStaticEmbedding`` (one
        learned weight per vocabulary term, no transformer at query time) and documents to SPLADE.
        """
        from sentence_transformers import SparseEncoder
        from sentence_transformers.sparse_encoder.models import MLMTransformer, SparseStaticEmbedding, SpladePooling

        info = checkpoint_info(base_model)
        if st_model_type(info) == "SparseEncoder":
            model = SparseEncoder(info.path, device="cpu")
        else:
            mlm = MLMTransformer(info.path)
            splade = [mlm, SpladePooling(pooling_strategy, embedding_dimension=mlm.get_embedding_dimension())]
            if architecture == "splade":
                model = SparseEncoder(modules=splade, device="cpu")
            elif architecture == "inference-free":
                from sentence_transformers.base.modules import Router

                static = SparseStaticEmbedding(tokenizer=mlm.tokenizer, frozen=False)
                model = SparseEncoder(modules=[Router.for_query_document([static], splade)], device="cpu")
            else:
                raise ValueError(f"architecture must be 'splade' or 'inference-free', got {architecture!r}")
        if query_prompt or document_prompt:
            model.prompts = {**model.prompts, "query": query_prompt, "document": document_prompt}
        return cls.from_model(info, model, model.tokenizer, **{"device": "cpu", **options})

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        max_active_dims: int | None = None,
        **options: Any,
    ) -> None:
        if max_active_dims is not None and (
            isinstance(max_active_dims, bool) or not isinstance(max_active_dims, int) or max_active_dims <= 0
        ):
            raise ValueError(f"max_active_dims must be a positive integer or None, got {max_active_dims!r}")
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.max_active_dims = max_active_dims
        super().__init__(model_name_or_path, **options)

    def _load(self, loaded: Loaded | None) -> None:
        self.model = loaded.model if loaded else self._load_model()
        self.model.eval()
        if self.backend != "torch":
            raise ValueError(f"the sparse family runs on PyTorch only; backend={self.backend!r} is not available")
        limit = self.position_limit = encoder_position_limit(self.model)
        if self.max_length is None:
            self.max_length = min(self.model.max_seq_length or 512, limit or 512)
        else:
            self.max_length = capped_max_length(self.max_length, limit, self.checkpoint.path)
        self._apply_max_length()

    def _apply_max_length(self) -> None:
        self.model.max_seq_length = self.max_length

    def _load_model(self) -> Any:
        from sentence_transformers import SparseEncoder

        reason = sparse_refusal(self.checkpoint)
        if reason is not None:
            raise InvalidCheckpointError(
                f"{self.checkpoint.path!r} cannot be loaded as a sparse model: {reason}. Found "
                f"{self.checkpoint.describe()}; detected model_type: {detected_model_type(self.checkpoint)}"
            )
        for folder in _tokenizer_folders(self.checkpoint):
            check_tokenizer_files(folder)
        model = SparseEncoder(
            self.checkpoint.path, device=str(self.device), model_kwargs={"dtype": self.dtype}, **self.hf_kwargs
        )
        refuse_all_zero_weights(model, self.checkpoint.path)
        return model

    @property
    def vocab_size(self) -> int:
        """The number of terms a text's weights run over (the masked LM's output vocabulary)."""
        from sentence_transformers.sparse_encoder.models import MLMTransformer

        # the MLM head's width is what SPLADE outputs; a pooling saved without its dimension reports
        # the hidden size through get_embedding_dimension
        mlm = next((m for m in self.model.modules() if isinstance(m, MLMTransformer)), None)
        if mlm is not None:
            return int(mlm.auto_model.config.vocab_size)
        dim = self.model.get_embedding_dimension()
        if not dim:
            raise ValueError(f"cannot tell the vocabulary size of {self.model_name_or_path!r}")
        return int(dim)

    def decode(self, weights: Any, top_k: int | None = None) -> list[tuple[str, float]]:
        """The terms of one encoded text (a row of :meth:`encode_queries`/:meth:`encode_documents`) with
        their weights, highest first: what the model matched on."""
        row = weights.tocoo() if hasattr(weights, "tocoo") else None
        if row is None or row.shape[0] != 1:
            raise ValueError("decode takes one row of encode_queries/encode_documents (a 1 x vocab sparse matrix)")
        order = np.argsort(-row.data, kind="stable")[:top_k]
        tokens = self.model.tokenizer.convert_ids_to_tokens(row.col[order].tolist())
        return [(str(t), float(w)) for t, w in zip(tokens, row.data[order])]

    # ---- what SentenceTransformersEncoder asks --------------------------------------------------

    def encode_queries(self, queries: Sequence[str], *, batch_size: int | None = None) -> Any:
        """Term weights of queries as ranking computes them: a SciPy CSR matrix ``(queries, vocab_size)``."""
        return super().encode_queries(queries, batch_size=batch_size)

    def encode_documents(self, docs: Sequence[str], *, batch_size: int | None = None) -> Any:
        """Term weights of documents, each cut at ``max_length`` tokens: a SciPy CSR matrix ``(docs, vocab_size)``."""
        return super().encode_documents(docs, batch_size=batch_size)

    def _document_prompt(self) -> str:
        return self.document_prompt or ""

    def _encode_options(self, is_query: bool) -> dict[str, Any]:
        return {
            "prompt": self.query_prompt if is_query else self.document_prompt,
            "convert_to_tensor": True,
            "convert_to_sparse_tensor": True,
            "max_active_dims": self.max_active_dims,
        }

    def _as_output(self, encoded: Any) -> Any:
        return sparse_rows(encoded, self.vocab_size)

    def _pair_scores(self, queries: Any, docs: Any, query_rows: np.ndarray, doc_rows: np.ndarray) -> Any:
        import torch

        q = queries.index_select(0, torch.as_tensor(query_rows, dtype=torch.long, device=queries.device))
        d = docs.index_select(0, torch.as_tensor(doc_rows, dtype=torch.long, device=docs.device))
        return self.model.similarity_pairwise(q.float(), d.float())


def _tokenizer_folders(info: CheckpointInfo) -> list[str]:
    """Where the checkpoint's tokenizers are: its Transformer module's folder, or with a ``Router``
    (inference-free SPLADE) each route's transformer and static-embedding folders."""
    if any(str(module.get("type", "")).endswith("Router") for module in info.modules or []):
        routes = [
            str(p)
            for p in sorted(Path(info.path).iterdir())
            if p.is_dir() and p.name.endswith(("Transformer", "SparseStaticEmbedding"))
        ]
        return routes or [info.path]
    return [transformer_folder(info)]


def sparse_refusal(info: CheckpointInfo) -> str | None:
    """Why ``info`` cannot be loaded faithfully as a sparse model, or ``None`` when it can: only a
    ``SparseEncoder`` folder says how its term weights are pooled (a bare masked LM needs training first)."""
    ours = info.metadata.get("model_type")
    if ours and ours != "sparse":
        return f"its {METADATA_FILE} says it is a {ours!r} model"
    kind = st_model_type(info)
    if kind == "SparseEncoder":
        return None
    if kind is not None:
        return f"it is a sentence-transformers {kind} folder, not a SparseEncoder"
    return (
        "it is not a sentence-transformers SparseEncoder folder; a masked LM becomes one by training "
        "(rag-retrieval-train sparse adds the SPLADE head)"
    )
