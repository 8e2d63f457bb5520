"""Tokenizing (query, document) pairs for cross-encoders, with long-document windows.

Everything here runs in the tokenizer's Rust code on whole lists: the pair template
(``[CLS] q [SEP] d [SEP]``, ``<s> q </s></s> d </s>``, ...) is the tokenizer's own, and the
windows of a long document come from its ``stride``/overflow support, so every window is a
well-formed pair for that tokenizer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
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


def max_per_owner(window_scores: np.ndarray, owner: np.ndarray, num_pairs: int) -> np.ndarray:
    """The best window score of each pair (split-and-take-the-max)."""
    scores = np.full(num_pairs, -np.inf, dtype=np.float64)
    np.maximum.at(scores, owner, window_scores)
    return scores
