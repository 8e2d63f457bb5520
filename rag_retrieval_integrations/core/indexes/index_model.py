"""The model an index encodes with: a loaded family of the index's kind, or one loaded from a path."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..models.base import BaseReranker

logger = logging.getLogger(__name__)

_Family = TypeVar("_Family", bound=BaseReranker)


def load_index_model(model: Any, model_kwargs: Mapping[str, Any] | None, family: type[_Family], noun: str) -> _Family:
    """The model an index encodes with: ``model`` itself if it is a loaded ``family`` model, else
    ``Reranker(model, family.model_type, **model_kwargs)`` for a path or hub id. ``noun`` names
    the family in errors ("embedding model")."""
    article = "an" if noun[0].lower() in "aeiou" else "a"
    what = f"{article} {noun} (model_type={family.model_type!r})"
    if isinstance(model, BaseReranker):
        if not isinstance(model, family):
            raise TypeError(f"model must be {what}, got a {model.model_type!r} model")
        if model_kwargs:
            raise ValueError(f"model_kwargs={dict(model_kwargs)!r} only apply when loading the model from a path")
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path, a hub id or a loaded {noun}, got {type(model).__name__}")
    from ..models.factory import Reranker

    loaded = Reranker(model, family.model_type, **dict(model_kwargs or {}))
    assert isinstance(loaded, family)
    return loaded


def warn_on_setting_changes(
    current: Mapping[str, Any], saved: Mapping[str, Any], folder: Path, keys: Sequence[str]
) -> None:
    """Warn when the loading model's settings (``current``) differ from those the index at
    ``folder`` recorded (``saved``) in any of ``keys``: its new vectors may not compare with the old."""
    changed = [
        f"{key}: index {saved.get(key)!r}, model {current[key]!r}"
        for key in keys
        if key in saved and saved[key] != current[key]
    ]
    if changed:
        logger.warning(
            "the model encodes differently from the one that built the index at %s (%s): scores of new and old "
            "documents may not compare",
            folder,
            "; ".join(changed),
        )
