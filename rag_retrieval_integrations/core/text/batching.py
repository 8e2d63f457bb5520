"""Running a model over many inputs: length-sorted batches, a token budget, OOM back-off.

Every family scores its inputs through :func:`score_in_batches`, so batching behaves the same
for cross-encoders and LLMs: inputs sorted by length (little padding), the longest batch
first (an out-of-memory error shows up at once), and on CUDA/MPS an out-of-memory error
halves the batch and retries instead of losing the work done so far.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from .pair_encoding import EncodedPairs

logger = logging.getLogger(__name__)


def plan_batches(
    lengths: np.ndarray, batch_size: int, max_batch_tokens: int | None = None, max_padding: float = 0.1
) -> list[np.ndarray]:
    """Group input positions into batches, longest first, wasting little compute on padding.

    Inputs are sorted by length. A batch takes up to ``batch_size`` inputs, and no more than
    fit in ``max_batch_tokens`` once padded to its longest; it closes early when the next
    input is more than ``max_padding`` shorter than its longest, so the long tail of a
    mixed-length set is not padded to its longest member.
    """
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    batches, start = [], 0
    while start < len(order):
        width = int(sorted_lengths[start])
        size = batch_size
        if max_batch_tokens is not None:
            size = max(1, min(size, max_batch_tokens // max(width, 1)))
        end = min(start + size, len(order))
        # sorted_lengths is non-increasing: the first position below the floor ends the batch
        below = np.flatnonzero(sorted_lengths[start:end] < width * (1.0 - max_padding))
        if below.size:
            end = start + int(below[0])
        batches.append(order[start:end])
        start = end
    return batches


def pad_batch(
    encoded: EncodedPairs, rows: np.ndarray, pad_token_id: int, padding_side: str = "right"
) -> dict[str, torch.Tensor]:
    """The inputs at ``rows`` as padded tensors (``input_ids``, ``attention_mask``, maybe ``token_type_ids``)."""
    lengths = [len(encoded.input_ids[r]) for r in rows]
    width = max(lengths)
    input_ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    token_type_ids = np.zeros((len(rows), width), dtype=np.int64) if encoded.token_type_ids is not None else None
    for j, (row, n) in enumerate(zip(rows, lengths)):
        span = slice(width - n, width) if padding_side == "left" else slice(0, n)
        input_ids[j, span] = encoded.input_ids[row]
        attention_mask[j, span] = 1
        if token_type_ids is not None:
            token_type_ids[j, span] = encoded.token_type_ids[row]
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}
    if token_type_ids is not None:
        batch["token_type_ids"] = torch.from_numpy(token_type_ids)
    return batch


def score_in_batches(
    encoded: EncodedPairs,
    score_batch: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    *,
    batch_size: int,
    pad_token_id: int,
    device: torch.device,
    padding_side: str = "right",
    max_batch_tokens: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> np.ndarray:
    """``score_batch`` over every input, in planned batches; returns one row of scores per input.

    ``score_batch`` maps a padded batch (already on ``device``) to a tensor with one score (or
    one row of scores, e.g. one per layer) per input.
    """
    scores: np.ndarray | None = None
    pending = list(reversed(plan_batches(_lengths(encoded), batch_size, max_batch_tokens)))
    while pending:
        rows = pending.pop()
        batch = {k: v.to(device) for k, v in pad_batch(encoded, rows, pad_token_id, padding_side).items()}
        try:
            out = score_batch(batch).float().cpu().numpy().astype(np.float64)
        except torch.OutOfMemoryError:
            if len(rows) == 1:
                raise
            out = None
        if out is None:
            # Retried outside the except block so the failed batch's tensors are freed first.
            del batch
            _empty_cache(device)
            half = len(rows) // 2
            logger.warning(
                "out of memory on a batch of %d inputs; retrying as two of %d and %d", len(rows), half, len(rows) - half
            )
            pending.extend([rows[half:], rows[:half]])
            continue
        if scores is None:
            scores = np.empty((len(encoded),) + out.shape[1:], dtype=np.float64)
        scores[rows] = out
        if progress is not None:
            progress(len(rows))
    assert scores is not None
    return scores


def _lengths(encoded: EncodedPairs) -> np.ndarray:
    return np.fromiter((len(ids) for ids in encoded.input_ids), dtype=np.int64, count=len(encoded))


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
