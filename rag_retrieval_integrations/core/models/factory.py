"""``Reranker(...)``: one entry point that picks the model family for a checkpoint."""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch

from ..errors import UnknownModelTypeError
from ..options import unknown_options
from .base import BaseReranker
from .checkpoint import read_checkpoint
from .registry import detect_model_type, get_model_class


def Reranker(
    model_name_or_path: str | os.PathLike[str],
    model_type: str | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    **options: Any,
) -> BaseReranker:
    """Load any supported ranking model behind one API.

    Args:
        model_name_or_path: a local checkpoint folder or a Hugging Face hub id.
        model_type: the model family (see :func:`available_model_types`); ``None`` detects it
            from the checkpoint's own files, never from its name.
        device, dtype, **options: passed to the family; see :class:`BaseReranker` for the
            common ones (``max_length``, ``batch_size``, ``long_doc``, ``overlap``, ...).
            Options saved in the checkpoint's ``rag_retrieval.json`` under ``"reranker_options"``
            are used as defaults.

    Returns:
        a :class:`BaseReranker` with ``compute_score``, ``rank`` and ``rank_many``.

    Raises:
        UnknownModelTypeError: ``model_type`` is not one of the registered families.
        CheckpointNotFoundError: the path does not exist.
        InvalidCheckpointError: the folder is not a checkpoint, or its kind cannot be told.
    """
    if model_type is not None:
        cls = get_model_class(model_type)
    checkpoint = read_checkpoint(
        model_name_or_path,
        revision=options.get("revision"),
        token=options.get("token"),
        gguf_file=options.get("gguf_file"),
    )
    if model_type is None:
        detected = detect_model_type(checkpoint)
        try:
            cls = get_model_class(detected)
        except UnknownModelTypeError:
            raise UnknownModelTypeError(
                f"{checkpoint.path!r} looks like a {detected!r} checkpoint ({checkpoint.describe()}), and no "
                f"installed model family handles {detected!r}; pass model_type= to choose one explicitly"
            ) from None
    saved = dict(checkpoint.metadata.get("reranker_options") or {})
    for group in cls.replaces_saved:
        if group & set(options):
            saved = {k: v for k, v in saved.items() if k not in group}
    accepted = accepted_options(cls)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(f"{cls.__name__} got unexpected option(s): {unknown_options(unknown, accepted)}")
    merged = {**{k: v for k, v in saved.items() if k in accepted}, **options}
    return cls.from_checkpoint(checkpoint, device=device, dtype=dtype, **merged)


def accepted_options(cls: type[BaseReranker]) -> set[str]:
    """The keyword options a family's constructor takes: its own and its parents' (which its
    ``**options`` passes on)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is not object and "__init__" in vars(klass):
            # only named parameters: a ``*args``/``**options`` is a pass-through, not an option called "args"
            parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
            names |= {p.name for p in parameters if p.kind in named}
    # ``loaded`` is from_model's (a model already in memory), not an option of loading from a path
    return names - {"self", "model_name_or_path", "loaded"}
