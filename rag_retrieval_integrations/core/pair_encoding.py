"""Tokenizing (query, document) pairs for cross-encoders, with long-document windows.

Everything here runs in the tokenizer's Rust code on whole lists: the pair template
(``[CLS] q [SEP] d [SEP]``, ``<s> q </s></s> d </s>``, ...) is the tokenizer's own, and the
windows of a long document come from its ``stride``/overflow support, so every window is a
well-formed pair for that tokenizer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass
class EncodedPairs:
    """Token ids of every model input, and which pair each input (window) belongs to."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    owner: np.ndarray  # owner[i] = index of the pair that input i is a window of
    num_pairs: int

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


def truncate_queries(tokenizer: PreTrainedTokenizerBase, queries: list[str], max_tokens: int) -> list[str]:
    """Cut queries longer than ``max_tokens`` tokens at a token boundary (text in, text out)."""
    encoded = tokenizer(queries, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    out = []
    for query, offsets in zip(queries, encoded["offset_mapping"]):
        if len(offsets) > max_tokens:
            logger.warning("a query of %d tokens was truncated to %d tokens", len(offsets), max_tokens)
            query = query[: offsets[max_tokens - 1][1]]
        out.append(query)
    return out


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
    """Token ids for each pair: one input per pair, or one per window with ``split_long_docs``."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer; cross-encoders need one for batched "
            "pair encoding and document windows"
        )
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    query_budget = query_token_budget(max_length, min_doc_share)
    min_doc_room = max_length - specials - query_budget
    if min_doc_room < 1:
        raise ValueError(
            f"max_length={max_length} leaves no room for the document after {specials} special tokens and a "
            f"query of up to {query_budget} tokens; raise max_length or min_doc_share"
        )
    if split_long_docs and overlap >= min_doc_room:
        raise ValueError(
            f"overlap={overlap} must be smaller than the smallest document window ({min_doc_room} tokens at "
            f"max_length={max_length}, min_doc_share={min_doc_share}); lower overlap or raise max_length"
        )
    distinct, inverse = unique(queries)
    distinct = truncate_queries(tokenizer, distinct, query_budget)
    wants_token_types = "token_type_ids" in tokenizer.model_input_names
    encoded = tokenizer(
        [distinct[i] for i in inverse],
        docs,
        truncation="only_second",
        max_length=max_length,
        stride=overlap if split_long_docs else 0,
        return_overflowing_tokens=split_long_docs,
        return_attention_mask=False,
        return_token_type_ids=wants_token_types,
    )
    if split_long_docs:
        owner = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
    else:
        owner = np.arange(len(docs), dtype=np.int64)
    return EncodedPairs(
        input_ids=encoded["input_ids"],
        token_type_ids=encoded["token_type_ids"] if wants_token_types else None,
        owner=owner,
        num_pairs=len(docs),
    )


def plan_batches(lengths: np.ndarray, batch_size: int, max_padding: float = 0.1) -> list[np.ndarray]:
    """Group input positions into batches, longest first, wasting little compute on padding.

    Inputs are sorted by length; a batch takes up to ``batch_size`` of them and closes early
    when the next input is more than ``max_padding`` shorter than the batch's longest, so the
    long tail of a mixed-length set is not padded to its longest member. The longest batch
    comes first, so that an out-of-memory error shows up at once rather than at the end.
    """
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    batches, start = [], 0
    while start < len(order):
        floor = sorted_lengths[start] * (1.0 - max_padding)
        # sorted_lengths is non-increasing: the first position below the floor ends the batch
        end = min(start + batch_size, len(order))
        below = np.flatnonzero(sorted_lengths[start:end] < floor)
        if below.size:
            end = start + int(below[0])
        batches.append(order[start:end])
        start = end
    return batches


def length_sorted_batches(
    encoded: EncodedPairs, batch_size: int, pad_token_id: int, padding_side: str = "right"
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Padded batches of model inputs (see :func:`plan_batches`) and the input positions of each."""
    lengths = np.fromiter((len(ids) for ids in encoded.input_ids), dtype=np.int64, count=len(encoded))
    for rows in plan_batches(lengths, batch_size):
        width = int(lengths[rows[0]])
        input_ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        token_type_ids = np.zeros((len(rows), width), dtype=np.int64) if encoded.token_type_ids is not None else None
        for j, row in enumerate(rows):
            n = lengths[row]
            span = slice(width - n, width) if padding_side == "left" else slice(0, n)
            input_ids[j, span] = encoded.input_ids[row]
            attention_mask[j, span] = 1
            if token_type_ids is not None:
                token_type_ids[j, span] = encoded.token_type_ids[row]
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}
        if token_type_ids is not None:
            batch["token_type_ids"] = torch.from_numpy(token_type_ids)
        yield rows, batch


def max_per_owner(window_scores: np.ndarray, owner: np.ndarray, num_pairs: int) -> np.ndarray:
    """The best window score of each pair (split-and-take-the-max)."""
    scores = np.full(num_pairs, -np.inf, dtype=np.float64)
    np.maximum.at(scores, owner, window_scores)
    return scores
