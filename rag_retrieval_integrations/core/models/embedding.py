"""Embedding (bi-encoder) family: a sentence-transformers model scoring by vector similarity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..errors import InvalidCheckpointError
from .base import Loaded, ModelCard, ModelPath
from .checkpoint import (
    METADATA_FILE,
    CheckpointInfo,
    checkpoint_info,
    colbert_format,
    has_classification_head,
    has_generation_head,
    is_decoder_only,
    st_model_type,
)
from .encoder_backend import first_transformer
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


@register_model_type("embedding")
class EmbeddingModel(SentenceTransformersEncoder):
    """An embedding model (a bi-encoder): encodes queries and documents apart (what indexes, the
    server's ``/v1/embeddings`` and the framework embeddings use) and ranks by their similarity.

    Loads any sentence-transformers checkpoint (or, with ``model_type="embedding"``, a bare
    transformers encoder, which sentence-transformers mean-pools). The score is the model's
    similarity function, cosine unless the checkpoint configures another; with cosine,
    ``normalize=True`` gives ``sigmoid(cosine)``.

    Args:
        truncate_dim: keep the first ``truncate_dim`` dimensions (Matryoshka models).
        query_prompt, document_prompt: text put before queries/documents; by default the
            checkpoint's own ``"query"``/``"document"`` prompts, if it has them.
        **options: the common options of :class:`BaseReranker`, and ``backend``/``quantize``
            (:class:`EncoderBackendMixin`: the transformer runs in ONNX Runtime, pooling and
            normalization stay sentence-transformers').

    Detected from a sentence-transformers folder (``modules.json``) that no family before it
    claims; trained by :meth:`for_training`.
    """

    detection_priority = 50
    card = ModelCard("sentence-transformers", "sentence-similarity", ("sentence-transformers", "feature-extraction"))
    peft_task_type = "FEATURE_EXTRACTION"

    @classmethod
    def matches(cls, info: CheckpointInfo) -> bool:
        """A sentence-transformers ``SentenceTransformer`` folder (or a ``modules.json`` that names no other
        kind of sentence-transformers model)."""
        kind = st_model_type(info)
        return kind == "SentenceTransformer" or (kind is None and info.modules is not None)

    @classmethod
    def for_training(
        cls,
        base_model: ModelPath,
        *,
        pooling: Literal["mean", "cls", "lasttoken"] | None = None,
        query_prompt: str = "",
        document_prompt: str = "",
        **options: Any,
    ) -> EmbeddingModel:
        """A bi-encoder to train on ``base_model``: a sentence-transformers checkpoint as it is, or
        (any other checkpoint, or any ``pooling`` given) its transformer + ``pooling`` + ``Normalize``.

        ``pooling`` defaults to ``"lasttoken"`` for decoder LLMs, whose tokenizer is then made to end
        every text with EOS (saved with the checkpoint), and to ``"mean"`` otherwise. Non-empty
        ``query_prompt``/``document_prompt`` become the model's ``"query"``/``"document"`` prompts.
        """
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.models import Normalize, Pooling, Transformer

        info = checkpoint_info(base_model)
        if info.modules is not None and pooling is None:
            model = SentenceTransformer(info.path, device="cpu")
        else:
            decoder = is_decoder_only(info.config or {})
            transformer = Transformer(info.path)
            if decoder:
                _append_eos(transformer.tokenizer)
            pooler = Pooling(transformer.get_embedding_dimension(), pooling or ("lasttoken" if decoder else "mean"))
            model = SentenceTransformer(modules=[transformer, pooler, Normalize()], device="cpu")
        if query_prompt or document_prompt:
            model.prompts = {**model.prompts, "query": query_prompt, "document": document_prompt}
        return cls.from_model(info, model, model.tokenizer, **{"device": "cpu", **options})

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        truncate_dim: int | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        **options: Any,
    ) -> None:
        if truncate_dim is not None and (not isinstance(truncate_dim, int) or truncate_dim <= 0):
            raise ValueError(f"truncate_dim must be a positive integer or None, got {truncate_dim!r}")
        self.truncate_dim = truncate_dim
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        super().__init__(model_name_or_path, **options)

    def _load(self, loaded: Loaded | None) -> None:
        self.model = loaded.model if loaded else self._load_model(self.truncate_dim)
        dim = self.model.get_embedding_dimension()
        if self.truncate_dim is not None and dim is not None and self.truncate_dim > dim:
            raise ValueError(f"truncate_dim={self.truncate_dim} exceeds the model's embedding dimension {dim}")
        self.model.eval()
        if self.backend != "torch":
            self._use_backend(
                first_transformer(self.model, self.checkpoint.path, self.backend),
                "last_hidden_state",
                self.model.tokenizer,
            )
        limit = self.position_limit = encoder_position_limit(self.model)
        if self.max_length is None:
            self.max_length = min(self.model.max_seq_length or 512, limit or 512)
        else:
            self.max_length = capped_max_length(self.max_length, limit, self.checkpoint.path)
        self._apply_max_length()

    def _apply_max_length(self) -> None:
        self.model.max_seq_length = self.max_length

    def _load_model(self, truncate_dim: int | None) -> Any:
        from sentence_transformers import SentenceTransformer

        _refuse_other_kinds(self.checkpoint)
        model = SentenceTransformer(
            self.checkpoint.path,
            device=str(self.device),
            truncate_dim=truncate_dim,
            model_kwargs={"dtype": self.dtype},
            **self.hf_kwargs,
        )
        refuse_all_zero_weights(model, self.checkpoint.path)
        return model

    @property
    def embedding_dim(self) -> int:
        """Dimension of the vectors it gives (``truncate_dim`` when loaded with one)."""
        dim = self.model.get_embedding_dimension()  # sentence-transformers applies truncate_dim
        if not dim:
            raise ValueError(f"cannot tell the embedding dimension of {self.model_name_or_path!r}")
        return int(dim)

    @property
    def similarity(self) -> str:
        """The similarity it scores with: the checkpoint's ``similarity_fn_name`` (``"cosine"`` unless it sets another)."""
        return str(self.model.similarity_fn_name)

    # ---- what SentenceTransformersEncoder asks --------------------------------------------------

    def encode_queries(self, queries: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed queries as ranking does (query prompt, ``truncate_dim``): a float32 array, one row each."""
        return super().encode_queries(queries, batch_size=batch_size)

    def encode_documents(self, docs: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed documents as ranking does in ``"truncate"`` mode: a float32 array, one row each.

        Each document is one vector, cut at ``max_length`` tokens; ``long_doc="split-max"``
        applies to ranking only.
        """
        return super().encode_documents(docs, batch_size=batch_size)

    def _document_prompt(self) -> str:
        return self.document_prompt or ""

    def _encode_options(self, is_query: bool) -> dict[str, Any]:
        return {"prompt": self.query_prompt if is_query else self.document_prompt, "convert_to_tensor": True}

    def _as_output(self, encoded: Any) -> np.ndarray:
        if encoded is None:
            return np.zeros((0, self.model.get_embedding_dimension() or 0), dtype=np.float32)
        return encoded.float().cpu().numpy()

    def _pair_scores(self, queries: Any, docs: Any, query_rows: np.ndarray, doc_rows: np.ndarray) -> Any:
        return self.model.similarity_pairwise(queries[query_rows].float(), docs[doc_rows].float())


def embedding_refusal(info: CheckpointInfo) -> str | None:
    """Why ``info`` cannot be loaded faithfully as a bi-encoder, or ``None`` when it can.

    A sentence-transformers ``SentenceTransformer`` folder is one; so is a bare encoder (its own
    hidden states, or a masked-LM pre-training head left aside), which sentence-transformers
    mean-pools. Anything that was built to score another way is not: a cross-encoder's
    classification head or a ColBERT projection would be dropped, and a decoder LLM would be
    mean-pooled, a pooling it was never trained with.
    """
    ours = info.metadata.get("model_type")
    if ours and ours != "embedding":
        return f"its {METADATA_FILE} says it is a {ours!r} model"
    kind = st_model_type(info)
    if info.modules is not None or kind is not None:
        if kind in (None, "SentenceTransformer"):
            return None
        return f"it is a sentence-transformers {kind} folder, not a SentenceTransformer"
    if colbert_format(info) is not None:
        return "it is a ColBERT checkpoint: embedding it would drop its token projection"
    if has_classification_head(info):
        return "it has a sequence-classification head (a cross-encoder), which embedding it would drop"
    if is_decoder_only(info.config or {}) or has_generation_head(info):
        return (
            "it is a decoder LLM without a sentence-transformers pooling; mean-pooling it would invent an "
            "embedding it was never trained for (train one with rag-retrieval-train embedding, which "
            "pools the last token)"
        )
    return None


def _refuse_other_kinds(info: CheckpointInfo) -> None:
    """Raise :class:`InvalidCheckpointError` for a checkpoint :func:`embedding_refusal` refuses, or
    one without tokenizer files."""
    reason = embedding_refusal(info)
    if reason is not None:
        raise InvalidCheckpointError(
            f"{info.path!r} cannot be loaded as an embedding model: {reason}. Found {info.describe()}; "
            f"detected model_type: {detected_model_type(info)} (Reranker(path) without model_type uses it)"
        )
    check_tokenizer_files(transformer_folder(info))


def _append_eos(tokenizer: Any) -> None:
    """Make the tokenizer end every text with EOS, the token whose state last-token pooling reads.

    Set in the fast tokenizer's own post-processor, so the saved checkpoint appends it at
    inference too, in sentence-transformers and in this family alike.
    """
    from tokenizers import processors

    eos = tokenizer.eos_token
    if eos is None:
        raise ValueError("last-token pooling needs a tokenizer with an eos token")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, tokenizer.eos_token_id)]
    )


EmbeddingReranker = EmbeddingModel
"""The name this family had before it was named for what it is (kept: same class)."""
