"""Cutting long texts into overlapping token windows, returned as text.

Used by families whose model takes single texts (bi-encoders): each window is an exact
substring of the document, cut at token boundaries found by the model's own tokenizer.
"""

from __future__ import annotations

import numpy as np
from transformers import PreTrainedTokenizerBase


def split_into_windows(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], window_tokens: int, overlap: int
) -> tuple[list[str], np.ndarray]:
    """Windows of at most ``window_tokens`` tokens sharing ``overlap`` tokens, and each window's text index.

    A text that fits in one window is returned unchanged, so scoring it this way gives the
    same result as scoring it whole.
    """
    if overlap >= window_tokens:
        raise ValueError(f"overlap={overlap} must be smaller than the window of {window_tokens} tokens")
    encoded = tokenizer(
        texts,
        add_special_tokens=False,
        truncation=True,
        max_length=window_tokens,
        stride=overlap,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_attention_mask=False,
    )
    owner = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
    counts = np.bincount(owner, minlength=len(texts))
    windows = []
    for text_index, offsets in zip(owner, encoded["offset_mapping"]):
        text = texts[text_index]
        if counts[text_index] == 1 or not offsets:
            windows.append(text)
        else:
            windows.append(text[offsets[0][0] : offsets[-1][1]])
    return windows, owner
