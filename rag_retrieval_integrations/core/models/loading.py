"""Loading a checkpoint's tokenizer and weights so that nothing is made up on the way.

``transformers`` is lenient where a ranking model must not be: a folder without tokenizer
files gets a tokenizer of a few special tokens (every word becomes ``[UNK]``), a head the
checkpoint lacks is initialised at random, and a ``max_length`` past the position embeddings
crashes deep inside torch or runs past them silently. Each of those would give scores that
look fine and mean nothing, so here each is an error naming what was found (or, for
``max_length``, a cap with a warning naming both numbers).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ..errors import InvalidCheckpointError
from .checkpoint import CheckpointInfo
from .registry import detected_model_type

logger = logging.getLogger(__name__)

# Any one of these lets AutoTokenizer build the checkpoint's real tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
)


def check_tokenizer_files(folder: str | Path) -> None:
    """Refuse a local checkpoint folder that holds no tokenizer (a hub id is not checked here)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise InvalidCheckpointError(
            f"{str(folder)!r} has no tokenizer: none of {', '.join(TOKENIZER_FILES)} is there, and without them "
            "every word would be scored as an unknown token; save the tokenizer next to the weights "
            "(tokenizer.save_pretrained(folder))"
        )


def transformer_folder(info: CheckpointInfo) -> str:
    """The folder of a sentence-transformers checkpoint's Transformer module (where its tokenizer is)."""
    for module in info.modules or []:
        if str(module.get("type", "")).endswith("Transformer"):
            return str(Path(info.path) / str(module.get("path") or ""))
    return info.path


def load_pretrained(auto_class: Any, info: CheckpointInfo, what: str, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained(info.path, **kwargs)``, refusing a checkpoint that lacks weights of the model.

    ``what`` names what the family needs (``"a sequence-classification head"``) for the
    error. Only the trainers create new heads, and they build their models themselves.
    """
    if info.gguf_file is None:  # a GGUF file holds its tokenizer
        check_tokenizer_files(info.path)
    kwargs.update(intermediate_checkpoint_options(info))
    try:
        model, loading = auto_class.from_pretrained(info.path, output_loading_info=True, **kwargs)
    except RuntimeError as err:
        if "mismatch" not in str(err) and "ignore_mismatched_sizes" not in str(err):
            raise
        raise InvalidCheckpointError(
            f"{info.path!r} does not fit its own config.json: some weights have other shapes than the config asks "
            f"for (transformers: {str(err).strip().splitlines()[-1][:200]}). A config.json edited by hand (another "
            "num_labels or id2label?) or copied from another model; restore the one saved with the weights"
        ) from None
    missing = sorted(loading.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise InvalidCheckpointError(
            f"{info.path!r} has no {what}: loading it as {type(model).__name__} would initialise {len(missing)} "
            f"weights at random ({shown}). Found {info.describe()}; detected model_type: {detected_model_type(info)} "
            "(Reranker(path) without model_type uses it). To train a new head, use rag-retrieval-train reranker"
        )
    refuse_all_zero_weights(model, info.path)
    return model


def refuse_all_zero_weights(model: Any, path: str) -> None:
    """An :class:`InvalidCheckpointError` when every weight of ``model`` is zero: a file zeroed
    behind a valid header (a failed copy, a sparse file) loads without complaint and scores every
    pair 0. Stops at the first tensor with a non-zero value, so a real model costs one tensor."""
    import torch

    with torch.no_grad():
        if any(bool(p.any()) for p in model.parameters()):
            return
    raise InvalidCheckpointError(
        f"every weight of {path!r} is zero: the weights file holds a valid header but no values (a failed copy "
        "or download?); copy or download it again"
    )


def intermediate_checkpoint_options(info: CheckpointInfo) -> dict[str, Any]:
    """``from_pretrained`` options for a trainer's intermediate ``checkpoint-N`` folder: its weights'
    names carry the training wrapper's prefix (``model.``), mapped away here. A LoRA run's checkpoint
    (adapter weights inside the wrapper) is refused with what to load instead."""
    described = info.metadata.get("intermediate_checkpoint")
    if not isinstance(described, dict):
        return {}
    if described.get("lora"):
        raise InvalidCheckpointError(
            f"{info.path!r} is an intermediate checkpoint of a LoRA run: its weights are the adapters inside the "
            "training wrapper, not a model. Load the finished run's folder (the LoRA merged or saved as an "
            "adapter), or resume the run to finish it"
        )
    prefix = str(described.get("weights_prefix") or "")
    return {"key_mapping": {f"^{re.escape(prefix)}": ""}} if prefix else {}


def position_limit(config: Any) -> int | None:
    """The longest input the model's position embeddings take, or ``None`` when the config does not say.

    The config's ``max_position_embeddings``, less RoBERTa's padding offset (its positions
    start after ``pad_token_id``, so 514 embeddings hold 512 tokens). A tokenizer's
    ``model_max_length`` is a default, not a limit: it may be below what the weights take.
    """
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    kind = str(getattr(config, "model_type", ""))
    if "roberta" in kind or kind == "camembert":
        positions -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return positions


def default_max_length(tokenizer: Any, config: Any, cap: int) -> int:
    """The ``max_length`` used when none is given: the tokenizer's limit when it has a real one,
    never past the position embeddings, at most ``cap``."""
    limits = [cap]
    from_tokenizer = getattr(tokenizer, "model_max_length", None)
    if isinstance(from_tokenizer, int) and 0 < from_tokenizer < 1_000_000:
        limits.append(from_tokenizer)
    positions = position_limit(config)
    if positions is not None:
        limits.append(positions)
    return min(limits)


def encoder_position_limit(model: Any) -> int | None:
    """:func:`position_limit` of a sentence-transformers model's first (Transformer) module."""
    first = model[0] if len(model) else None
    auto_model = getattr(first, "auto_model", None)
    if auto_model is None:
        return None
    return position_limit(auto_model.config)


def capped_max_length(max_length: int, limit: int | None, path: str) -> int:
    """``max_length``, or the model's ``limit`` with a warning when it asks for more than the model takes."""
    if limit is not None and max_length > limit:
        logger.warning(
            "max_length=%d is more than %r takes (%d positions); using max_length=%d", max_length, path, limit, limit
        )
        return limit
    return max_length


def corrupt_weights_error(path: str, err: Exception) -> InvalidCheckpointError:
    """An error naming the weight files of a checkpoint that safetensors could not read."""
    folder = Path(path)
    files = sorted(str(p) for p in folder.glob("**/*.safetensors")) if folder.is_dir() else []
    return InvalidCheckpointError(
        f"the weights of {path!r} cannot be read ({', '.join(files) or 'safetensors'}: {err}); the file is "
        "truncated or corrupt: copy or download it again"
    )
