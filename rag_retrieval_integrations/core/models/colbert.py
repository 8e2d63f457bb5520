"""ColBERT (late interaction) family: one L2-normalized vector per token, scored by MaxSim.

The model is sentence-transformers' ``MultiVectorEncoder``, built or loaded by
:mod:`.colbert_models` (every layout in the wild: sentence-transformers, PyLate, Stanford-NLP,
BGE-M3); encoding, truncation and split-max windows are :class:`.st_encoder.SentenceTransformersEncoder`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..options import check_positive_int
from .base import Loaded, ModelCard, ModelPath
from .checkpoint import (
    CheckpointInfo,
    colbert_format,
    has_generation_head,
    read_checkpoint,
    st_model_type,
)
from .colbert_models import (
    DEFAULT_DIM,
    DEFAULT_DOCUMENT_LENGTH,
    DEFAULT_QUERY_LENGTH,
    DOCUMENT_MARKER,
    QUERY_MARKER,
    build_colbert_model,
    expansion_settings,
    load_colbert_model,
)
from .cross_encoder import DEFAULT_MAX_LENGTH
from .encoder_backend import first_transformer
from .loading import (
    capped_max_length,
    default_max_length,
    position_limit,
)
from .maxsim import maxsim_pairwise
from .registry import register_model_type
from .st_encoder import SentenceTransformersEncoder

__all__ = [
    "DEFAULT_DIM",
    "DEFAULT_DOCUMENT_LENGTH",
    "DEFAULT_QUERY_LENGTH",
    "DOCUMENT_MARKER",
    "QUERY_MARKER",
    "ColBERTReranker",
    "build_colbert_model",
    "load_colbert_model",
]


@register_model_type("colbert")
class ColBERTReranker(SentenceTransformersEncoder):
    """Ranks with ColBERT: query and documents encoded apart into token vectors, scored by MaxSim.

    Loads sentence-transformers ``MultiVectorEncoder`` folders (what ``rag-retrieval-train
    colbert`` writes), PyLate and Stanford-NLP ColBERT checkpoints, and BGE-M3 folders (a
    transformers encoder with ``colbert_linear.pt``); see :func:`load_colbert_model`. Token
    vectors equal ``MultiVectorEncoder.encode_query``/``encode_document`` on the same checkpoint.
    The raw score is MaxSim (the sum over query tokens of the best dot product with a document
    token) or, for checkpoints scored that way (BGE-M3), its mean over query tokens.

    ``max_length`` is the document length (default: the checkpoint's, at most 512); in
    ``long_doc="split-max"`` mode a longer document is cut into overlapping windows of that
    length and scores its best window.

    Args:
        query_length: query tokens (markers and special tokens included); default: the
            checkpoint's. With query expansion every query is padded or cut to this length.
        query_expansion: pad queries with scored ``[MASK]`` tokens; default: the checkpoint's.
        query_mean: divide scores by the number of query tokens (MeanMaxSim); default: the
            checkpoint's ``similarity_fn_name``.
        **options: the common options of :class:`BaseReranker`, and ``backend``/``quantize``
            (:class:`EncoderBackendMixin`: the encoder runs in ONNX Runtime, the projection and
            MaxSim stay in PyTorch).

    Detected from the multi-vector layouts, and from a bare encoder folder whose only head is
    BGE-M3's ``colbert_linear.pt``; trained by :meth:`for_training`.
    """

    detection_priority = 30
    card = ModelCard(
        "sentence-transformers", "sentence-similarity", ("sentence-transformers", "colbert", "late-interaction")
    )
    peft_task_type = "FEATURE_EXTRACTION"

    @classmethod
    def matches(cls, info: CheckpointInfo) -> bool:
        """A multi-vector folder (``MultiVectorEncoder``, PyLate, ``HF_ColBERT``), or a BGE-M3 layout that is
        nothing else: no ``modules.json`` (that is BGE-M3's dense embedding model) and no LM head."""
        layout = colbert_format(info)
        if layout == "multi-vector":
            return True
        bare = info.modules is None and st_model_type(info) not in ("SentenceTransformer", "SparseEncoder")
        return layout == "bge-m3" and bare and not has_generation_head(info)

    @classmethod
    def for_training(cls, base_model: ModelPath, **settings: Any) -> ColBERTReranker:
        """A ColBERT model to train, on the CPU: a ColBERT checkpoint (any layout of
        :func:`load_colbert_model`) as it is, keeping its own settings; any other encoder gets a new
        token projection, ``settings`` being the keyword arguments of :func:`build_colbert_model`
        (``dim``, the markers, ``query_length``, ``document_length``, ``query_expansion``...)."""
        info = base_model if isinstance(base_model, CheckpointInfo) else read_checkpoint(base_model)
        model = load_colbert_model(info) if colbert_format(info) is not None else build_colbert_model(info, **settings)
        return cls.from_model(info, model, model.tokenizer, device="cpu")

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        query_length: int | None = None,
        query_expansion: bool | None = None,
        query_mean: bool | None = None,
        **options: Any,
    ) -> None:
        if query_length is not None:
            check_positive_int(query_length, "query_length")
        if query_expansion is not None and not isinstance(query_expansion, bool):
            raise TypeError(f"query_expansion must be True, False or None, got {query_expansion!r}")
        self._query_options = (query_length, query_expansion, query_mean)  # applied to the model _load loads
        super().__init__(model_name_or_path, **options)

    def _load(self, loaded: Loaded | None) -> None:
        query_length, query_expansion, query_mean = self._query_options
        self.model = (
            loaded.model
            if loaded
            else load_colbert_model(self.checkpoint, device=self.device, dtype=self.dtype, **self.hf_kwargs)
        )
        self.model.eval()
        transformer = self.model[0]
        if self.backend != "torch":
            self._use_backend(
                first_transformer(self.model, self.checkpoint.path, self.backend),
                "last_hidden_state",
                transformer.tokenizer,
            )
        self._configure_queries(transformer, query_length, query_expansion)
        if query_mean is not None:
            self.model.similarity_fn_name = "meanmaxsim" if query_mean else "maxsim"
        if self.max_length is None:
            self.max_length = transformer.document_length or default_max_length(
                transformer.tokenizer, transformer.auto_model.config, DEFAULT_MAX_LENGTH
            )
        self.position_limit = position_limit(transformer.auto_model.config)
        self.max_length = capped_max_length(self.max_length, self.position_limit, self.checkpoint.path)
        self._apply_max_length()

    def _apply_max_length(self) -> None:
        self.model[0].document_length = self.max_length

    @staticmethod
    def _configure_queries(transformer: Any, query_length: int | None, query_expansion: bool | None) -> None:
        expansion = transformer.query_expansion
        current = expansion["length"] if expansion else transformer.query_length
        expand = expansion is not None if query_expansion is None else query_expansion
        length = query_length or current or DEFAULT_QUERY_LENGTH
        if query_length is None and query_expansion is None:
            return
        # Cleared first: an expansion length above the query_length cap is rejected.
        transformer.query_length = None
        transformer.query_expansion = (
            expansion_settings(length, bool(expansion and expansion["attend"])) if expand else None
        )
        if not expand:
            transformer.query_length = length

    # ---- properties read by the index and the trainers ---------------------------------------

    @property
    def query_mean(self) -> bool:
        """Whether scores are MaxSim divided by the query's token count (MeanMaxSim)."""
        return self.model.similarity_fn_name == "meanmaxsim"

    @property
    def embedding_dim(self) -> int:
        """Dimension of each token vector."""
        return int(self.model.get_embedding_dimension())

    @property
    def query_length(self) -> int | None:
        """Query tokens: the fixed length with query expansion, else the most kept (``None``: no limit)."""
        transformer = self.model[0]
        expansion = transformer.query_expansion
        return expansion["length"] if expansion else transformer.query_length

    @property
    def query_expansion(self) -> bool:
        return self.model[0].query_expansion is not None

    def settings(self) -> dict[str, Any]:
        """What decides the token vectors and scores, for an index's manifest."""
        return {
            "model": self.model_name_or_path,
            "dim": self.embedding_dim,
            "query_length": self.query_length,
            "query_expansion": self.query_expansion,
            "document_length": self.max_length,
            "query_mean": self.query_mean,
            "prompts": dict(self.model.prompts),
        }

    # ---- encoding -----------------------------------------------------------------------------

    def encode_queries(self, queries: Sequence[str], *, batch_size: int | None = None) -> list[np.ndarray]:
        """Token vectors of each query as ranking uses them: a float32 ``(tokens, dim)`` array each."""
        return super().encode_queries(queries, batch_size=batch_size)

    def encode_documents(self, docs: Sequence[str], *, batch_size: int | None = None) -> list[np.ndarray]:
        """Token vectors of each document, cut at ``max_length`` tokens: a float32 ``(tokens, dim)`` array each.

        Skiplisted tokens (punctuation, for checkpoints with a skiplist) are left out, as in scoring;
        ``long_doc="split-max"`` applies to ranking only.
        """
        return super().encode_documents(docs, batch_size=batch_size)

    # ---- what SentenceTransformersEncoder asks --------------------------------------------------

    def _document_prompt(self) -> str:
        return self.model.prompts.get("document") or ""  # the document marker

    def _as_output(self, encoded: Any) -> list[np.ndarray]:
        return [] if encoded is None else [v.float().cpu().numpy() for v in encoded]

    def _pair_scores(self, queries: Any, docs: Any, query_rows: np.ndarray, doc_rows: np.ndarray) -> Any:
        return maxsim_pairwise(
            [queries[i] for i in query_rows], [docs[j] for j in doc_rows], query_mean=self.query_mean
        )
