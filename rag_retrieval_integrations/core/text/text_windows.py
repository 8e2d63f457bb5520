"""Cutting long texts into overlapping token windows, returned as text.

Used by families whose model takes single texts (bi-encoders): each window is an exact
substring of the document, cut at token boundaries found by the model's own tokenizer.

A window is text that the model tokenizes again, so it must not start inside a word: the
tail of a word (``##nda`` of ``panda``, or ``nda`` without SentencePiece's ``▁``) tokenizes
differently on its own, into more tokens than the window was measured with, and with a
Unigram (SentencePiece) model the head of a word can as well. Windows are therefore cut at
word boundaries, words as the tokenizer's pre-tokenizer splits them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from .pair_encoding import max_per_owner, unique, window_overlap
from .truncation import estimate_clipped


def _window_spans(word_ids: list[int | None], window_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` token spans covering ``len(word_ids)`` tokens, cut at word boundaries.

    Each window ends at the last word boundary within ``window_tokens`` tokens, and the next
    starts at the last boundary that leaves ``overlap`` shared tokens. Only a word longer than
    the window is cut inside (there is no boundary to cut at).
    """
    n = len(word_ids)
    boundaries = [i for i in range(1, n) if word_ids[i] is None or word_ids[i] != word_ids[i - 1]] + [n]

    def last_boundary(after: int, at_most: int) -> int | None:
        i = bisect.bisect_right(boundaries, at_most) - 1
        return boundaries[i] if i >= 0 and boundaries[i] > after else None

    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        limit = min(start + window_tokens, n)
        end = last_boundary(start, limit) or limit
        spans.append((start, end))
        if end == n:
            return spans
        next_start = last_boundary(start, end - overlap)
        if next_start is None:  # no boundary leaves `overlap` tokens: take the first one after start
            first = boundaries[bisect.bisect_right(boundaries, start)]
            next_start = first if first < end else max(end - overlap, start + 1)
        start = next_start


def split_into_windows(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], window_tokens: int, overlap: int
) -> tuple[list[str], np.ndarray]:
    """Windows of at most ``window_tokens`` tokens sharing about ``overlap`` tokens, and each window's text index.

    A text that fits in one window is returned unchanged, so scoring it this way gives the
    same result as scoring it whole. Windows start and end at word boundaries, so each one
    tokenizes back into the tokens it was cut from, and consecutive windows share at least
    ``overlap`` tokens (the exceptions: a word longer than the window is cut inside, and a
    word longer than ``window_tokens - overlap`` can leave a smaller overlap).
    """
    if overlap >= window_tokens:
        raise ValueError(f"overlap={overlap} must be smaller than the window of {window_tokens} tokens")
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer; document windows need one")
    encoded = tokenizer(
        texts, add_special_tokens=False, verbose=False, return_offsets_mapping=True, return_attention_mask=False
    )
    windows: list[str] = []
    owner: list[int] = []
    for index, text in enumerate(texts):
        offsets = encoded["offset_mapping"][index]
        if len(offsets) <= window_tokens:
            windows.append(text)
            owner.append(index)
            continue
        for start, end in _window_spans(encoded.word_ids(index), window_tokens, overlap):
            windows.append(text[offsets[start][0] : offsets[end - 1][1]])
            owner.append(index)
    return windows, np.asarray(owner, dtype=np.int64)


def text_window_limit(tokenizer: PreTrainedTokenizerBase, max_length: int, prefix: str) -> int:
    """Document tokens that fit ``max_length`` once the special tokens and ``prefix`` (a prompt or marker) are added."""
    prefix_tokens = len(tokenizer(prefix, add_special_tokens=False, verbose=False)["input_ids"]) if prefix else 0
    return max_length - tokenizer.num_special_tokens_to_add(pair=False) - prefix_tokens


def text_truncation(
    tokenizer: PreTrainedTokenizerBase, originals: list[str], clipped: list[str], room: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each text's tokens in all and kept when cut at ``room`` tokens (``clipped``: the texts as
    cut before tokenizing, see ``long_text``), for the truncation report."""
    lengths = tokenizer(
        clipped, add_special_tokens=False, verbose=False, return_attention_mask=False, return_length=True
    )["length"]
    full = estimate_clipped(np.asarray(lengths, dtype=np.int64), originals, clipped)
    return full, np.minimum(full, max(room, 0))


def document_windows(
    tokenizer: PreTrainedTokenizerBase, docs: list[str], max_length: int, prefix: str, overlap: int
) -> tuple[list[str], np.ndarray]:
    """:func:`split_into_windows` with windows that fit ``max_length`` once the tokenizer's
    special tokens and ``prefix`` (a document prompt or marker) are added, sharing
    :func:`window_overlap` tokens (``overlap``, at most half a window)."""
    window = text_window_limit(tokenizer, max_length, prefix)
    if window < 1:
        raise ValueError(
            f"max_length={max_length} leaves no room for document tokens after the special tokens and the "
            f"document prefix {prefix!r}; raise max_length"
        )
    return split_into_windows(tokenizer, docs, window, window_overlap(overlap, window))


def pair_windows(doc_of_pair: np.ndarray, window_owner: np.ndarray, num_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (pair, window of the pair's document): ``(pair index, window index)`` arrays.

    ``doc_of_pair[i]`` is pair ``i``'s document, ``window_owner[w]`` window ``w``'s document
    (windows of a document consecutive). Scoring each row and keeping each pair's best
    (``max_per_owner(scores, pair_idx, len(doc_of_pair))``) is split-and-take-the-max; with one
    window per document it is a plain gather.
    """
    windows_per_doc = np.bincount(window_owner, minlength=num_docs)
    first_window = np.cumsum(windows_per_doc) - windows_per_doc
    per_pair = windows_per_doc[doc_of_pair]
    pair_idx = np.repeat(np.arange(len(doc_of_pair)), per_pair)
    within = np.arange(per_pair.sum()) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    return pair_idx, first_window[doc_of_pair][pair_idx] + within


def score_pairs_by_windows(
    queries: list[str],
    docs: list[str],
    *,
    windows: Callable[[list[str]], tuple[list[str], np.ndarray]] | None,
    encode: Callable[[list[str], bool], Any],
    pair_scores: Callable[[Any, Any, np.ndarray, np.ndarray], Any],
) -> np.ndarray:
    """``(query, document)`` pair scores of a family that encodes texts on their own (bi-encoder, ColBERT).

    Every distinct query and document (or each window of it, when ``windows`` splits documents,
    see :func:`document_windows`) is encoded once by ``encode(texts, is_query)``;
    ``pair_scores(query_encodings, text_encodings, query_rows, text_rows)`` scores the rows'
    pairs (a tensor); each pair keeps its best window (split-and-take-the-max).
    """
    distinct_queries, query_of_pair = unique(queries)
    distinct_docs, doc_of_pair = unique(docs)
    if windows is not None:
        texts, window_owner = windows(distinct_docs)
    else:
        texts, window_owner = distinct_docs, np.arange(len(distinct_docs))
    q = encode(distinct_queries, True)
    d = encode(texts, False)
    pair_idx, window_idx = pair_windows(doc_of_pair, window_owner, len(distinct_docs))
    scores = pair_scores(q, d, query_of_pair[pair_idx], window_idx)
    return max_per_owner(scores.cpu().numpy().astype(np.float64), pair_idx, len(docs))
