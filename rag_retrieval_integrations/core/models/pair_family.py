"""``PairEncodingFamily``: the base of the families that read a query and a document as one input.

Cross-encoders and decoder LLM rerankers both turn each pair into one model input (or, in
``split-max`` mode, one input per document window), count what truncation cut, score the inputs
in padded, length-sorted batches and keep each pair's best window. That path is written once
here; a family says how it encodes a pair (:meth:`_encode`) and how a batch scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..text.batching import score_in_batches
from ..text.pair_encoding import EncodedPairs, max_per_owner
from .base import BaseReranker


class PairEncodingFamily(BaseReranker):
    """A checkpoint family scoring each (query, document) pair as one model input."""

    tokenizer: Any

    def _encode(self, queries: list[str], docs: list[str], split_long_docs: bool) -> EncodedPairs:
        """Token ids of the pairs' model inputs (one per document window when ``split_long_docs``)."""
        raise NotImplementedError

    def encode_pairs(self, queries: list[str], docs: list[str]) -> EncodedPairs:
        return self._encode(queries, docs, split_long_docs=False)

    def _score_windows(
        self,
        queries: list[str],
        docs: list[str],
        batch_size: int,
        score_batch: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        **batching: Any,
    ) -> np.ndarray:
        """Each pair's score: its inputs encoded (truncation counted), scored in batches by
        ``score_batch`` (``batching``: ``score_in_batches``'s padding side and token budget), and the
        best window kept; one column per score when ``score_batch`` gives several (one per layer)."""
        encoded = self._encode(queries, docs, split_long_docs=self.long_doc == "split-max")
        if encoded.doc_tokens is not None and encoded.kept_doc_tokens is not None:
            self._note_truncation(encoded.doc_tokens, encoded.kept_doc_tokens)
        with self._progress(len(encoded), "Scoring", unit="input") as progress:
            window_scores = score_in_batches(
                encoded,
                score_batch,
                batch_size=batch_size,
                pad_token_id=self.tokenizer.pad_token_id,
                device=self.device,
                progress=progress.update,
                **batching,
            )
        if window_scores.ndim == 1:
            return max_per_owner(window_scores, encoded.owner, encoded.num_pairs)
        columns = [
            max_per_owner(window_scores[:, k], encoded.owner, encoded.num_pairs) for k in range(window_scores.shape[1])
        ]
        return np.stack(columns, axis=1)
