"""ColBERT (late interaction) family: one L2-normalized vector per token, scored by MaxSim.

The model is sentence-transformers' ``MultiVectorEncoder``: a transformer encoder, a linear
projection of every token state (no bias, 128 dims by default), query and document markers
(``"[Q] "``/``"[D] "`` put before the text, registered as special tokens), queries padded to a
fixed length with ``[MASK]`` tokens that the encoder does not attend to but that are scored
(query expansion), an optional punctuation skiplist on the document side, and L2 normalization.
:func:`build_colbert_model` makes one from any encoder (what ``rag-retrieval-train colbert``
trains); :func:`load_colbert_model` loads the layouts in the wild:

- sentence-transformers 6 ``MultiVectorEncoder`` folders (ours included), PyLate folders and
  Stanford-NLP ColBERT checkpoints (``HF_ColBERT``): read by ``MultiVectorEncoder`` itself;
- BGE-M3: a transformers encoder with ``colbert_linear.pt`` next to it. Its ColBERT vectors are
  ``normalize(W h + b)`` of every token but the first (``[CLS]``/``<s>``), and its score is the
  mean over query tokens (``query_mean=True``), as in FlagEmbedding's ``BGEM3FlagModel``.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidCheckpointError
from ..text.inputs import check_docs, check_positive_int
from ..text.long_text import clip_for_truncation
from ..text.text_windows import document_windows, score_pairs_by_windows, text_truncation, text_window_limit
from .backend_option import EncoderBackendMixin, first_transformer
from .base import BaseReranker, Loaded, ModelPath
from .checkpoint import (
    BGE_M3_COLBERT_FILE,
    CheckpointInfo,
    colbert_format,
    has_generation_head,
    read_checkpoint,
    st_model_type,
)
from .cross_encoder import DEFAULT_MAX_LENGTH
from .loading import (
    capped_max_length,
    check_tokenizer_files,
    default_max_length,
    position_limit,
    refuse_all_zero_weights,
    transformer_folder,
)
from .maxsim import maxsim_pairwise
from .registry import register_model_type

logger = logging.getLogger(__name__)

DEFAULT_DIM = 128
DEFAULT_QUERY_LENGTH = 32
DEFAULT_DOCUMENT_LENGTH = 180
QUERY_MARKER = "[Q] "
DOCUMENT_MARKER = "[D] "


def _register_markers(transformer: Any, markers: Sequence[str]) -> None:
    """Make each marker one special token (``"[Q]"``, not ``[``, ``q``, ``]``), growing the
    vocabulary and the embedding matrix for markers the tokenizer does not have.

    Registered as special, non-normalized tokens so that a lower-casing tokenizer still matches
    them in the raw text; saved with the tokenizer, so every loader of the checkpoint
    (``MultiVectorEncoder``, PyLate, ours) tokenizes them the same way.
    """
    from transformers import AddedToken

    tokenizer = transformer.tokenizer
    words = [m.strip() for m in markers if m.strip()]
    new = [w for w in words if tokenizer.tokenize(w) != [w]]
    if not new:
        return
    tokenizer.add_tokens([AddedToken(w, normalized=False, special=True) for w in new], special_tokens=True)
    embeddings = transformer.auto_model.get_input_embeddings()
    if len(tokenizer) > embeddings.num_embeddings:
        transformer.auto_model.resize_token_embeddings(len(tokenizer))


def _punctuation_tokens(tokenizer: Any) -> list[str]:
    """The ASCII punctuation characters that are whole tokens of this tokenizer (ColBERT's skiplist)."""
    unk = tokenizer.unk_token_id
    return [p for p in string.punctuation if tokenizer.convert_tokens_to_ids(p) not in (None, unk)]


def _expansion(length: int, attend: bool) -> dict[str, Any]:
    return {"strategy": "fixed", "attend": attend, "length": length}


def build_colbert_model(
    base_model: ModelPath,
    *,
    dim: int = DEFAULT_DIM,
    query_marker: str = QUERY_MARKER,
    document_marker: str = DOCUMENT_MARKER,
    query_length: int = DEFAULT_QUERY_LENGTH,
    document_length: int = DEFAULT_DOCUMENT_LENGTH,
    query_expansion: bool = True,
    attend_to_expansion_tokens: bool = False,
    skip_punctuation: bool = True,
    query_mean: bool = False,
    device: str | None = "cpu",
    **hf_kwargs: Any,
) -> Any:
    """A new, untrained ColBERT ``MultiVectorEncoder`` on top of an encoder.

    Args:
        base_model: a transformers encoder folder or hub id, or a sentence-transformers folder
            (its transformer is used; pooling and normalization are dropped).
        dim: output dimension of the token projection (a new ``Linear(hidden, dim, bias=False)``).
        query_marker, document_marker: text put before every query / document, each registered
            as one special token (``""`` for none).
        query_length: query tokens (special tokens and marker included). With
            ``query_expansion`` every query is cut or padded to exactly this length, the padding
            being ``[MASK]`` tokens that are scored; without it, the most query tokens kept.
        document_length: most document tokens (special tokens and marker included).
        query_expansion: pad queries with ``[MASK]`` tokens (ColBERT's query augmentation).
        attend_to_expansion_tokens: let the encoder attend to the ``[MASK]`` tokens (ColBERT
            and PyLate: no).
        skip_punctuation: leave document tokens that are punctuation out of the score.
        query_mean: score with MaxSim divided by the query's token count (MeanMaxSim).
        device: where to put the model.
        **hf_kwargs: ``trust_remote_code``, ``revision``, ``token`` for loading the encoder.
    """
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    for name, value in (("dim", dim), ("query_length", query_length), ("document_length", document_length)):
        check_positive_int(value, name)
    info = (
        base_model
        if isinstance(base_model, CheckpointInfo)
        else read_checkpoint(base_model, revision=hf_kwargs.get("revision"), token=hf_kwargs.get("token"))
    )
    load_kwargs = {k: v for k, v in hf_kwargs.items() if v is not None}
    transformer = Transformer(
        transformer_folder(info),
        max_seq_length=document_length,
        document_length=document_length,
        query_length=None if query_expansion else query_length,
        model_kwargs=dict(load_kwargs),
        processor_kwargs=dict(load_kwargs),
        config_kwargs=dict(load_kwargs),
    )
    if query_expansion:
        if transformer.tokenizer.mask_token is None and transformer.tokenizer.eos_token is None:
            raise ValueError(
                f"query_expansion=True pads queries with the mask token, but the tokenizer of {info.path!r} has "
                "neither a mask nor an eos token; pass query_expansion=False"
            )
        transformer.query_expansion = _expansion(query_length, attend_to_expansion_tokens)
    _register_markers(transformer, [query_marker, document_marker])
    projection = Dense(
        transformer.get_embedding_dimension(),
        dim,
        bias=False,
        activation_function=torch.nn.Identity(),
        module_input_name="token_embeddings",
    )
    skiplist = _punctuation_tokens(transformer.tokenizer) if skip_punctuation else []
    return MultiVectorEncoder(
        modules=[
            transformer,
            projection,
            MultiVectorMask(skiplist_words=skiplist),
            Normalize(module_input_name="token_embeddings"),
        ],
        prompts={"query": query_marker, "document": document_marker},
        similarity_fn_name="meanmaxsim" if query_mean else "maxsim",
        device=device,
    )


def _bge_m3_model(info: CheckpointInfo, colbert_linear: str, device: str, dtype: torch.dtype, **hf_kwargs: Any) -> Any:
    """BGE-M3's ColBERT head as a ``MultiVectorEncoder``: its encoder, ``colbert_linear.pt`` as the
    projection (with bias), the first token ([CLS]/<s>) left out on both sides, MeanMaxSim."""
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    try:
        state = torch.load(colbert_linear, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise InvalidCheckpointError(f"{colbert_linear} is not a readable torch state dict: {e}") from None
    if not isinstance(state, dict) or "weight" not in state or getattr(state["weight"], "ndim", 0) != 2:
        raise InvalidCheckpointError(
            f"{colbert_linear} must hold a Linear layer's state dict (weight of shape (dim, hidden), optional bias); "
            f"got {sorted(state) if isinstance(state, dict) else type(state).__name__}"
        )
    load_kwargs = {k: v for k, v in hf_kwargs.items() if v is not None}
    transformer = Transformer(
        transformer_folder(info),
        model_kwargs={"dtype": dtype, **load_kwargs},
        processor_kwargs=dict(load_kwargs),
        config_kwargs=dict(load_kwargs),
    )
    hidden = transformer.get_embedding_dimension()
    out_features, in_features = state["weight"].shape
    if in_features != hidden:
        raise InvalidCheckpointError(
            f"{colbert_linear} projects from {in_features} dims, but the encoder of {info.path!r} has {hidden}"
        )
    projection = Dense(
        in_features,
        out_features,
        bias="bias" in state,
        activation_function=torch.nn.Identity(),
        init_weight=state["weight"].float(),
        init_bias=state["bias"].float() if "bias" in state else None,
        module_input_name="token_embeddings",
    )
    tokenizer = transformer.tokenizer
    first = tokenizer("")["input_ids"][:1]
    if not first or first[0] not in tokenizer.all_special_ids:
        raise InvalidCheckpointError(
            f"BGE-M3 drops the first token ([CLS]/<s>) from its ColBERT vectors, but the tokenizer of {info.path!r} "
            "does not start texts with a special token"
        )
    # A skiplist of that one token on both sides leaves out exactly position 0: it occurs nowhere else.
    drop_first = MultiVectorMask(
        skiplist_words=tokenizer.convert_ids_to_tokens(first), skiplist_tasks=["query", "document"]
    )
    return MultiVectorEncoder(
        modules=[transformer, projection.to(dtype), drop_first, Normalize(module_input_name="token_embeddings")],
        similarity_fn_name="meanmaxsim",
        device=device,
    )


def _hub_file(info: CheckpointInfo, name: str, revision: str | None, token: str | bool | None) -> str | None:
    if info.is_local:
        path = Path(info.path) / name
        return str(path) if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return hf_hub_download(info.path, name, revision=revision, token=token)
    except EntryNotFoundError:
        return None


def load_colbert_model(
    checkpoint: ModelPath, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, **hf_kwargs: Any
) -> Any:
    """Load a ColBERT checkpoint of any supported layout as a sentence-transformers ``MultiVectorEncoder``.

    Raises:
        InvalidCheckpointError: the checkpoint has no ColBERT projection (a plain encoder, a
            bi-encoder or a cross-encoder): train one with ``rag-retrieval-train colbert`` or
            start from :func:`build_colbert_model`.
    """
    from sentence_transformers import MultiVectorEncoder

    info = (
        checkpoint
        if isinstance(checkpoint, CheckpointInfo)
        else read_checkpoint(checkpoint, revision=hf_kwargs.get("revision"), token=hf_kwargs.get("token"))
    )
    check_tokenizer_files(transformer_folder(info))
    layout = colbert_format(info)
    if layout == "multi-vector":
        load_kwargs = {k: v for k, v in hf_kwargs.items() if v is not None}
        model = MultiVectorEncoder(info.path, device=str(device), model_kwargs={"dtype": dtype}, **load_kwargs)
        refuse_all_zero_weights(model, info.path)
        return model
    colbert_linear = _hub_file(info, BGE_M3_COLBERT_FILE, hf_kwargs.get("revision"), hf_kwargs.get("token"))
    if colbert_linear is not None:
        model = _bge_m3_model(info, colbert_linear, str(device), dtype, **hf_kwargs)
        refuse_all_zero_weights(model, info.path)
        return model
    raise InvalidCheckpointError(
        f"{info.path!r} is not a ColBERT checkpoint: found {info.describe()}, but no MultiVectorEncoder/PyLate "
        f"config, HF_ColBERT architecture or BGE-M3 {BGE_M3_COLBERT_FILE}. A ColBERT model needs a trained token "
        "projection: train one with `rag-retrieval-train colbert` (or build one with build_colbert_model)"
    )


@register_model_type("colbert")
class ColBERTReranker(EncoderBackendMixin, BaseReranker):
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
        transformer.document_length = self.max_length

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
        transformer.query_expansion = _expansion(length, bool(expansion and expansion["attend"])) if expand else None
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
        return self._encode_texts(check_docs(queries, "queries"), True, batch_size)

    def encode_documents(self, docs: Sequence[str], *, batch_size: int | None = None) -> list[np.ndarray]:
        """Token vectors of each document, cut at ``max_length`` tokens: a float32 ``(tokens, dim)`` array each.

        Skiplisted tokens (punctuation, for checkpoints with a skiplist) are left out, as in scoring;
        ``long_doc="split-max"`` applies to ranking only.
        """
        return self._encode_texts(check_docs(docs), False, batch_size)

    def _encode_texts(self, texts: list[str], is_query: bool, batch_size: int | None) -> list[np.ndarray]:
        batch_size = self.batch_size if batch_size is None else check_positive_int(batch_size, "batch_size")
        if not texts:
            return []
        with self._lock:
            return [v.float().cpu().numpy() for v in self._encode(texts, is_query, batch_size)]

    @torch.inference_mode()
    def _encode(self, texts: list[str], is_query: bool, batch_size: int, count_truncation: bool = True) -> list[Tensor]:
        encode = self.model.encode_query if is_query else self.model.encode_document
        if not is_query:  # see long_text.py: a huge document is cut far past what is kept
            clipped = clip_for_truncation(self.model.tokenizer, texts, self.max_length or 512)
            if count_truncation:
                full, kept = text_truncation(self.model.tokenizer, texts, clipped, self._document_window_limit() or 0)
                self._note_truncation(full, kept)
            texts = clipped
        return encode(texts, batch_size=batch_size, show_progress_bar=self._show_progress())

    def _document_window_limit(self) -> int | None:
        assert self.max_length is not None
        return text_window_limit(self.model.tokenizer, self.max_length, self.model.prompts.get("document") or "")

    def _document_windows(self, docs: list[str]) -> tuple[list[str], np.ndarray]:
        assert self.max_length is not None
        marker = self.model.prompts.get("document") or ""
        return document_windows(self.model.tokenizer, docs, self.max_length, marker, self.overlap)

    @torch.inference_mode()
    def _score(self, queries: list[str], docs: list[str], batch_size: int) -> np.ndarray:
        return score_pairs_by_windows(
            queries,
            docs,
            windows=self._document_windows if self.long_doc == "split-max" else None,
            encode=lambda texts, is_query: self._encode(texts, is_query, batch_size, self.long_doc == "truncate"),
            pair_scores=lambda q, d, q_rows, d_rows: maxsim_pairwise(
                [q[i] for i in q_rows], [d[j] for j in d_rows], query_mean=self.query_mean
            ),
        )
