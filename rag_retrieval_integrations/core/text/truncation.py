"""Counting what ``long_doc="truncate"`` cuts, and saying so when it is a noticeable share.

Truncation is silent in every library: a ColBERT checkpoint that indexes at its 128-token
training length cuts most SQuAD paragraphs without a word (R@10 0.9158 against 0.9456 at
256 tokens). Each family counts, per document it scores or indexes, its tokens and how many
were kept; one warning per call (or per index build, see :meth:`BaseReranker.truncation_scope`)
names the share cut, the length used and the remedies when more than
``WARN_DOCUMENT_SHARE`` of the documents or ``WARN_TOKEN_SHARE`` of their tokens were cut. It is a
WARNING the first time per model and kind of call (scoring, index build); later ones are logged at
INFO, so a chain answering many questions does not repeat it, and ``truncation_totals`` counts all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

WARN_DOCUMENT_SHARE = 0.10
WARN_TOKEN_SHARE = 0.20


@dataclass
class TruncationStats:
    """Documents seen and cut, and their tokens in all and kept, over one or more calls."""

    documents: int = 0
    truncated: int = 0
    tokens: int = 0
    kept_tokens: int = 0

    def add(self, full_tokens: np.ndarray, kept_tokens: np.ndarray) -> None:
        """Count documents of ``full_tokens`` tokens each, of which ``kept_tokens`` were scored."""
        full = np.asarray(full_tokens, dtype=np.int64)
        kept = np.minimum(np.asarray(kept_tokens, dtype=np.int64), full)
        self.documents += len(full)
        self.truncated += int((kept < full).sum())
        self.tokens += int(full.sum())
        self.kept_tokens += int(kept.sum())

    def merge(self, other: TruncationStats) -> None:
        self.documents += other.documents
        self.truncated += other.truncated
        self.tokens += other.tokens
        self.kept_tokens += other.kept_tokens

    @property
    def document_share(self) -> float:
        """Share of the documents that were cut."""
        return self.truncated / self.documents if self.documents else 0.0

    @property
    def token_share(self) -> float:
        """Share of all document tokens that were cut."""
        return 1.0 - self.kept_tokens / self.tokens if self.tokens else 0.0

    @property
    def noticeable(self) -> bool:
        return self.document_share > WARN_DOCUMENT_SHARE or self.token_share > WARN_TOKEN_SHARE

    def summary(self, max_length: int | None) -> str:
        """``"30.0% of docs, 45.1% of tokens at 128"`` for a report; ``"none"`` when nothing was cut."""
        if not self.truncated:
            return "none" if self.documents else "-"
        return f"{self.document_share:.1%} of docs, {self.token_share:.1%} of tokens at {max_length}"

    def describe(self, max_length: int | None) -> str:
        """``"12 of 40 documents (30.0%) were cut at max_length=128, losing 45.1% of their tokens"``."""
        return (
            f"{self.truncated} of {self.documents} documents ({self.document_share:.1%}) were cut at "
            f"max_length={max_length}, losing {self.token_share:.1%} of their tokens"
        )


def warn_if_noticeable(
    stats: TruncationStats, what: str, max_length: int | None, limit: int | None, level: int = logging.WARNING
) -> bool:
    """Log one message at ``level`` for ``what`` (``"scoring"``, ``"index build"``) when a noticeable
    share was cut; whether it was noticeable."""
    if not stats.noticeable:
        return False
    longer = f"raise max_length (the model takes up to {limit} tokens)" if limit and limit > (max_length or 0) else ""
    remedies = " or ".join(r for r in (longer, "use long_doc='split-max' to score every part") if r)
    logger.log(level, "truncation in %s: %s; %s", what, stats.describe(max_length), remedies)
    return True


def estimate_clipped(full_tokens: np.ndarray, texts: list[str], clipped: list[str]) -> np.ndarray:
    """Token counts of texts that were cut before tokenizing (see ``long_text``), scaled by their
    characters from the tokens of the cut: a lower bound made realistic, for the share only."""
    full = np.asarray(full_tokens, dtype=np.int64).copy()
    for i, (text, cut) in enumerate(zip(texts, clipped)):
        if len(cut) < len(text) and cut:
            full[i] = max(full[i], int(full[i] * len(text) / len(cut)))
    return full
