"""Encoding a corpus for an index build: a chunk at a time, under one progress bar and one truncation count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from ..models.base import BaseReranker


def encode_in_chunks(
    model: BaseReranker,
    texts: list[str],
    encode: Callable[[list[str]], Any],
    *,
    show_progress_bar: bool | None,
    batch_size: int | None,
    desc: str,
) -> list[Any]:
    """``encode`` of ``texts`` a chunk at a time under a progress bar, as one truncation scope (one
    warning for a whole build, not one per chunk); the chunks' results in order."""
    chunk = max(256, 8 * (batch_size or model.batch_size))
    show = model._show_progress() if show_progress_bar is None else show_progress_bar
    out = []
    with (
        model.truncation_scope("index build"),
        tqdm(total=len(texts), desc=desc, unit="doc", disable=not show) as progress,
    ):
        for start in range(0, len(texts), chunk):
            out.append(encode(texts[start : start + chunk]))
            progress.update(len(texts[start : start + chunk]))
    return out
