"""Tokenizing (query, document) pairs for cross-encoders, with long-document windows.

Everything here runs in the tokenizer's Rust code on whole lists: the pair template
(``[CLS] q [SEP] d [SEP]``, ``<s> q </s></s> d </s>``, ...) is the tokenizer's own, and the
windows of a long document come from its ``stride``/overflow support, so every window is a
well-formed pair for that tokenizer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from .long_text import clip_for_truncation
from .truncation import estimate_clipped

logger = logging.getLogger(__name__)


@dataclass
class EncodedPairs:
    """Token ids of every model input, and which pair each input (window) belongs to."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    owner: np.ndarray  # owner[i] = index of the pair that input i is a window of
    num_pairs: int
    # in truncate mode: each pair's document tokens, in all and kept (see truncation.py)
    doc_tokens: np.ndarray | None = None
    kept_doc_tokens: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def unique(values: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct values in first-seen order, and for each input the index of its value."""
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
    return list(index), inverse


def query_token_budget(max_length: int, min_doc_share: float) -> int:
    """Most query tokens kept: ``max_length`` less the share reserved for the document.

    With ``min_doc_share=0.25`` this is ``max_length * 3 // 4``, the limit FlagEmbedding uses.
    """
    return max_length - int(max_length * min_doc_share + 0.5)


def window_overlap(overlap: int, window: int) -> int:
    """The overlap used between windows of ``window`` document tokens: ``overlap``, at most half the window.

    A window then always moves on by at least half its length, so an overlap chosen for long
    windows (the default 32 tokens) still works where a short ``max_length`` or a long query
    leaves few document tokens, instead of failing, or of scoring every token in dozens of
    windows when the overlap is just under the window.
    """
    return max(0, min(overlap, window // 2))


def truncate_queries(
    tokenizer: PreTrainedTokenizerBase, queries: list[str], max_tokens: int
) -> tuple[list[str], list[int]]:
    """Cut queries longer than ``max_tokens`` tokens at a token boundary (text in, text out), and their token counts."""
    encoded = tokenizer(
        queries, add_special_tokens=False, verbose=False, return_offsets_mapping=True, return_attention_mask=False
    )
    out, lengths = [], []
    for query, offsets in zip(queries, encoded["offset_mapping"]):
        if len(offsets) > max_tokens:
            logger.warning("a query of %d tokens was truncated to %d tokens", len(offsets), max_tokens)
            query = query[: offsets[max_tokens - 1][1]]
        out.append(query)
        lengths.append(min(len(offsets), max_tokens))
    return out, lengths


def pair_window_limit(tokenizer: PreTrainedTokenizerBase, max_length: int) -> int:
    """The most document tokens one ``max_length`` input can hold: what a one-token query leaves."""
    return max_length - tokenizer.num_special_tokens_to_add(pair=True) - 1


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    queries: list[str],
    docs: list[str],
    *,
    max_length: int,
    split_long_docs: bool,
    overlap: int,
    min_doc_share: float,
) -> EncodedPairs:
    """Token ids for each pair: one input per pair, or one per window with ``split_long_docs``.

    A query is cut to its share of ``max_length`` (``min_doc_share``) and, at a very short
    ``max_length``, further so that at least one document token fits. Windows of one pair's
    document hold what its query leaves, and share :func:`window_overlap` tokens.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer; cross-encoders need one for batched "
            "pair encoding and document windows"
        )
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    if pair_window_limit(tokenizer, max_length) < 1:
        raise ValueError(
            f"max_length={max_length} cannot hold {specials} special tokens, a query token and a document token; "
            f"raise max_length to at least {specials + 2}"
        )
    query_budget = min(query_token_budget(max_length, min_doc_share), max_length - specials - 1)
    distinct, inverse = unique(queries)
    distinct, query_lengths = truncate_queries(tokenizer, distinct, query_budget)
    pair_queries = [distinct[i] for i in inverse]
    wants_token_types = "token_type_ids" in tokenizer.model_input_names

    def tokenize(rows: np.ndarray, stride: int) -> Any:
        return tokenizer(
            [pair_queries[i] for i in rows],
            [docs[i] for i in rows],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=split_long_docs,
            return_attention_mask=False,
            return_token_type_ids=wants_token_types,
        )

    if not split_long_docs:
        originals, docs = docs, clip_for_truncation(tokenizer, docs, max_length)  # a 50 MB document costs what it keeps
        encoded = tokenize(np.arange(len(docs)), 0)
        # what was cut: the document tokens of the overflowing encodings the tokenizer keeps anyway
        per_input = specials + np.asarray(query_lengths, dtype=np.int64)[inverse]
        kept = np.array([len(e.ids) for e in encoded.encodings], dtype=np.int64) - per_input
        cut = np.array([sum(len(o.ids) for o in e.overflowing) for e in encoded.encodings], dtype=np.int64)
        cut -= np.array([len(e.overflowing) for e in encoded.encodings], dtype=np.int64) * per_input
        return EncodedPairs(
            input_ids=encoded["input_ids"],
            token_type_ids=encoded["token_type_ids"] if wants_token_types else None,
            owner=np.arange(len(docs), dtype=np.int64),
            num_pairs=len(docs),
            doc_tokens=estimate_clipped(kept + cut, originals, docs),
            kept_doc_tokens=kept,
        )
    # The tokenizer takes one stride per call: pairs whose query leaves a window too short for
    # `overlap` are encoded in a call of their own, with the overlap their window allows.
    rooms = max_length - specials - np.asarray(query_lengths, dtype=np.int64)[inverse]
    strides = np.array([window_overlap(overlap, int(room)) for room in rooms], dtype=np.int64)
    if len(strides) and strides.min() < overlap:
        logger.debug(
            "overlap=%d reduced to %d tokens for %d of %d pairs, whose query leaves windows of %d document tokens",
            overlap,
            strides.min(),
            int((strides < overlap).sum()),
            len(strides),
            int(rooms.min()),
        )
    input_ids: list[list[int]] = []
    token_type_ids: list[list[int]] = []
    owners: list[np.ndarray] = []
    for stride in np.unique(strides):
        rows = np.flatnonzero(strides == stride)
        encoded = tokenize(rows, int(stride))
        input_ids += encoded["input_ids"]
        if wants_token_types:
            token_type_ids += encoded["token_type_ids"]
        owners.append(rows[np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)])
    return EncodedPairs(
        input_ids=input_ids,
        token_type_ids=token_type_ids if wants_token_types else None,
        owner=np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64),
        num_pairs=len(docs),
    )


def max_per_owner(window_scores: np.ndarray, owner: np.ndarray, num_pairs: int) -> np.ndarray:
    """The best window score of each pair (split-and-take-the-max)."""
    scores = np.full(num_pairs, -np.inf, dtype=np.float64)
    np.maximum.at(scores, owner, window_scores)
    return scores
