"""Building and loading ColBERT models as sentence-transformers ``MultiVectorEncoder``.

The model is a transformer encoder, a linear projection of every token state (no bias, 128 dims by
default), query and document markers (``"[Q] "``/``"[D] "`` put before the text, registered as
special tokens), queries padded to a fixed length with ``[MASK]`` tokens that the encoder does not
attend to but that are scored (query expansion), an optional punctuation skiplist on the document
side, and L2 normalization. :func:`build_colbert_model` makes one from any encoder (what
``rag-retrieval-train colbert`` trains); :func:`load_colbert_model` loads the layouts in the wild:

- sentence-transformers 6 ``MultiVectorEncoder`` folders (ours included), PyLate folders and
  Stanford-NLP ColBERT checkpoints (``HF_ColBERT``): read by ``MultiVectorEncoder`` itself;
- BGE-M3: a transformers encoder with ``colbert_linear.pt`` next to it. Its ColBERT vectors are
  ``normalize(W h + b)`` of every token but the first (``[CLS]``/``<s>``), and its score is the
  mean over query tokens (``query_mean=True``), as in FlagEmbedding's ``BGEM3FlagModel``.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidCheckpointError
from ..options import check_positive_int
from .base import ModelPath
from .checkpoint import (
    BGE_M3_COLBERT_FILE,
    CheckpointInfo,
    colbert_format,
    read_checkpoint,
)
from .loading import (
    check_tokenizer_files,
    refuse_all_zero_weights,
    transformer_folder,
)

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


def expansion_settings(length: int, attend: bool) -> dict[str, Any]:
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
        transformer.query_expansion = expansion_settings(query_length, attend_to_expansion_tokens)
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
