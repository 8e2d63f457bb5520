"""What a training run works inside: progress bars switched off when the config says so, and
model-loading errors named by the config key that named the model (for a one-line CLI error)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rag_retrieval_integrations.core.errors import (
    CheckpointNotFoundError,
    InvalidCheckpointError,
    UnknownModelTypeError,
)


@contextmanager
def progress_bars(show: bool) -> Iterator[None]:
    """Without ``show``, no progress bars from transformers (model loading) or datasets (the Arrow cache)."""
    if show:
        yield
        return
    import datasets
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:  # a global switch: put it back as it was for whoever runs next in this process
        if shown[0]:
            transformers_logging.enable_progress_bar()
        if shown[1]:
            datasets.enable_progress_bars()


@contextmanager
def naming_key(key: str) -> Iterator[None]:
    """Prefix a model-loading error with the config key that named the model, for a one-line CLI error."""
    try:
        yield
    except (CheckpointNotFoundError, InvalidCheckpointError, UnknownModelTypeError) as e:
        if len(e.args) != 1 or str(e).startswith(f"{key}: "):
            raise
        try:
            named = type(e)(f"{key}: {e}")
        except TypeError:  # a subclass with other constructor arguments: leave it as it is
            raise e from None
        raise named from e
