"""GGUF checkpoints (llama.cpp's single-file format) into ordinary Hugging Face folders.

``transformers`` reads a GGUF file with ``from_pretrained(folder, gguf_file=name)`` (it needs the
``gguf`` package) and dequantizes every tensor to float, which takes seconds to minutes. It then
refuses ``save_pretrained`` on that model, so every process would pay the dequantization again.
:func:`convert_gguf` pays it once: it rebuilds the model from the GGUF's config, loads the
dequantized weights into it (every key must match) and writes a normal folder (``config.json``,
``model.safetensors``, the tokenizer with its chat template) that every family, FlagEmbedding,
sentence-transformers and the trainers load without ``gguf_file``.

    >>> from rag_retrieval_integrations import convert_gguf
    >>> folder = convert_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "./smollm2")   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import fnmatch
import os
import shutil
import struct
import tempfile
from pathlib import Path

import torch

from ..errors import CheckpointNotFoundError, InvalidCheckpointError

__all__ = ["convert_gguf", "require_gguf"]

GGUF_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, IndexError, EOFError, struct.error)
"""What transformers' GGUF reader raises on a file that is not one (truncated: ``struct.error``)."""

# What a converted folder holds (save_pretrained of a causal LM and its tokenizer, plus what this
# project adds to a checkpoint): ``overwrite=True`` replaces only a folder made of these.
CONVERTED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "rag_retrieval.json",
    "rag_retrieval_onnx",
)
_STAGING = ".converting-"


def require_gguf() -> None:
    """Raise a one-line ImportError naming the extra when the ``gguf`` package is missing."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ImportError(
            "reading a GGUF checkpoint needs the `gguf` package: pip install 'rag-retrieval[gguf]' (or pip install gguf)"
        ) from None


def convert_gguf(
    gguf_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
) -> Path:
    """Write the GGUF checkpoint ``gguf_path`` as a Hugging Face folder at ``output_dir``; return that folder.

    The model keeps its architecture and causal-LM head (``config.architectures`` is set, for
    example ``["LlamaForCausalLM"]``, so detection sees a causal LM). Weights are stored in
    ``dtype`` (float32 by default: the quantized values are already rounded; storing them in
    bfloat16 rounds them again). The folder is written next to ``output_dir`` first and moved
    into place when complete, so an interrupted conversion never leaves a half-written model.

    Raises:
        CheckpointNotFoundError: ``gguf_path`` does not exist.
        InvalidCheckpointError: the file is not a GGUF checkpoint transformers can read.
        FileExistsError: ``output_dir`` exists and ``overwrite`` is false.
        ValueError: ``output_dir`` is a file, holds the GGUF file, or holds files that are not a
            converted model (``overwrite=True`` never deletes a user's other files).
        ImportError: the ``gguf`` package is missing.
    """
    source = Path(gguf_path).expanduser().resolve()
    target = Path(output_dir).expanduser().resolve()
    if not source.is_file():
        raise CheckpointNotFoundError(f"GGUF file {os.fspath(gguf_path)!r} does not exist")
    _check_target(Path(gguf_path).expanduser().absolute(), target, os.fspath(output_dir), overwrite)
    _remove_dead_staging(target)
    require_gguf()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    try:
        # no AutoConfig of its own: every from_pretrained parses the file's metadata again (for Gemma 3's
        # 262k-token vocabulary, a quarter of the conversion), and the loaded model has the config
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    except GGUF_READ_ERRORS as exc:
        raise InvalidCheckpointError(
            f"{os.fspath(gguf_path)!r} is not a GGUF checkpoint transformers can read "
            f"({type(exc).__name__}: {exc}); a truncated download? copy or download it again"
        ) from exc
    # A GGUF-loaded model carries a quantization marker that makes save_pretrained refuse it;
    # a model built from the plain config with the same weights saves normally.
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(loaded).__name__]
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(loaded.state_dict(), strict=True)
    if model.generation_config is not None and loaded.generation_config is not None:
        model.generation_config = loaded.generation_config

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{_STAGING}{os.getpid()}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _check_target(source: Path, target: Path, given: str, overwrite: bool) -> None:
    """Refuse, before the conversion's long read, an ``output_dir`` that cannot or must not be replaced."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ValueError(f"output_dir {given!r} is a file; give a folder to write the converted model to")
    if not overwrite:
        raise FileExistsError(f"{given!r} exists; pass overwrite=True to replace it")
    if source.is_relative_to(target) or source.resolve().is_relative_to(target):
        raise ValueError(
            f"output_dir {given!r} holds the GGUF file being converted; replacing it would delete the source: "
            "convert to another folder"
        )
    foreign = sorted(
        p.name for p in target.iterdir() if not any(fnmatch.fnmatch(p.name, pattern) for pattern in CONVERTED_FILES)
    )
    if foreign:
        raise ValueError(
            f"output_dir {given!r} holds files that are not a converted model ({', '.join(foreign[:5])}); "
            "overwrite=True replaces only a folder convert_gguf wrote: convert to a new or empty folder"
        )


def _remove_dead_staging(target: Path) -> None:
    """Delete the staging folders of conversions into ``target`` whose process is gone (killed
    midway: a staging folder holds a whole model, hundreds of MB)."""
    for staging in target.parent.glob(f".{target.name}{_STAGING}*"):
        pid = staging.name[len(f".{target.name}{_STAGING}") :].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
