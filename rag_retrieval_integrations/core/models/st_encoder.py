"""``SentenceTransformersEncoder``: what the two families on a sentence-transformers model share.

The embedding family (one vector per text) and the ColBERT family (one vector per token) encode
queries and documents apart with sentence-transformers' ``encode_query``/``encode_document``, cut
huge documents before tokenizing, count what truncation cut, cut long documents into token windows
for ``split-max``, and score a pair from the two encodings. All of that is written once here; a
family says only how its vectors come out, with which document prompt, and how a query's and a
document's encodings score (:meth:`_pair_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..options import check_positive_int
from ..text.inputs import check_docs
from ..text.long_text import clip_for_truncation
from ..text.text_windows import document_windows, score_pairs_by_windows, text_truncation, text_window_limit
from .base import BaseReranker
from .encoder_backend import EncoderBackendMixin


class SentenceTransformersEncoder(EncoderBackendMixin, BaseReranker):
    """Base of the families whose ``self.model`` is a sentence-transformers model encoding texts apart.

    A family sets ``self.model`` in its ``_load`` and implements :meth:`_document_prompt`,
    :meth:`_encode_options`, :meth:`_as_output` and :meth:`_pair_scores`.
    """

    model: Any

    # ---- what a family says ---------------------------------------------------------------

    def _document_prompt(self) -> str:
        """The text put before every document (counted in a window's length)."""
        raise NotImplementedError

    def _encode_options(self, is_query: bool) -> dict[str, Any]:
        """Extra keyword arguments of ``encode_query``/``encode_document`` (a prompt, the output type)."""
        return {}

    def _as_output(self, encoded: Any) -> Any:
        """The encodings of :meth:`encode_queries`/:meth:`encode_documents` (NumPy, on the CPU);
        ``encoded`` is ``None`` for no texts."""
        raise NotImplementedError

    def _pair_scores(self, queries: Any, docs: Any, query_rows: np.ndarray, doc_rows: np.ndarray) -> Any:
        """The scores of ``(queries[query_rows[i]], docs[doc_rows[i]])`` from their encodings."""
        raise NotImplementedError

    # ---- encoding, written once -------------------------------------------------------------

    def encode_queries(self, queries: Sequence[str], *, batch_size: int | None = None) -> Any:
        """Encode queries as ranking does (the query prompt or markers, the query length)."""
        return self._encode_texts(check_docs(queries, "queries"), True, batch_size)

    def encode_documents(self, docs: Sequence[str], *, batch_size: int | None = None) -> Any:
        """Encode documents as ranking does in ``"truncate"`` mode: each cut at ``max_length`` tokens
        (``long_doc="split-max"`` applies to ranking only)."""
        return self._encode_texts(check_docs(docs), False, batch_size)

    @torch.inference_mode()
    def _encode_texts(self, texts: list[str], is_query: bool, batch_size: int | None) -> Any:
        batch_size = self.batch_size if batch_size is None else check_positive_int(batch_size, "batch_size")
        if not texts:
            return self._as_output(None)
        with self._lock:
            return self._as_output(self._encode(texts, is_query, batch_size))

    @torch.inference_mode()
    def _encode(self, texts: list[str], is_query: bool, batch_size: int, count_truncation: bool = True) -> Any:
        encode = self.model.encode_query if is_query else self.model.encode_document
        if not is_query:  # see long_text.py: a huge document is cut far past what is kept
            clipped = clip_for_truncation(self.model.tokenizer, texts, self.max_length or 512)
            if count_truncation:
                full, kept = text_truncation(self.model.tokenizer, texts, clipped, self._document_window_limit() or 0)
                self._note_truncation(full, kept)
            texts = clipped
        return encode(
            texts, batch_size=batch_size, show_progress_bar=self._show_progress(), **self._encode_options(is_query)
        )

    def _document_window_limit(self) -> int | None:
        assert self.max_length is not None
        return text_window_limit(self.model.tokenizer, self.max_length, self._document_prompt())

    def _document_windows(self, docs: list[str]) -> tuple[list[str], np.ndarray]:
        assert self.max_length is not None
        return document_windows(self.model.tokenizer, docs, self.max_length, self._document_prompt(), self.overlap)

    @torch.inference_mode()
    def _score(self, queries: list[str], docs: list[str], batch_size: int) -> np.ndarray:
        return score_pairs_by_windows(
            queries,
            docs,
            windows=self._document_windows if self.long_doc == "split-max" else None,
            encode=lambda texts, is_query: self._encode(texts, is_query, batch_size, self.long_doc == "truncate"),
            pair_scores=self._pair_scores,
        )
