"""A huge document costs what is kept of it in truncate mode, and scores exactly as before."""

from __future__ import annotations

import numpy as np
import pytest

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core.text import long_text
from rag_retrieval_integrations.core.text.long_text import clip_for_truncation

HUGE = "The giant panda is a bear native to China. " * 25_000  # about 1 MB
SPACES_THEN_WORDS = " " * 300_000 + "The giant panda is a bear native to China."  # no token until the end


class LongestText:
    """Records the longest text a tokenizer is given, by wrapping its ``__call__``."""

    def __init__(self, monkeypatch, tokenizer):
        self.longest = 0
        cls = type(tokenizer)
        original = cls.__call__

        def call(tok, text=None, text_pair=None, *args, **kwargs):
            for texts in (text, text_pair):
                if texts is not None:
                    for t in [texts] if isinstance(texts, str) else texts:
                        self.longest = max(self.longest, len(t) if isinstance(t, str) else 0)
            return original(tok, text, text_pair, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", call)


@pytest.mark.parametrize("fixture", ["bert_cross_encoder", "bi_encoder", "decoder_llm"])
def test_a_huge_document_is_cut_before_tokenizing_and_scores_the_same(request, monkeypatch, fixture):
    ranker = Reranker(request.getfixturevalue(fixture), max_length=64)
    tokenizer = ranker.model.tokenizer if fixture == "bi_encoder" else ranker.tokenizer
    pairs = [("what is a panda?", HUGE), ("what is a panda?", SPACES_THEN_WORDS)]
    with monkeypatch.context() as uncut:
        uncut.setattr(long_text, "CHARS_PER_TOKEN", 10**9)  # no cut: the reference
        want = ranker.compute_score(pairs)
    spy = LongestText(monkeypatch, tokenizer)
    np.testing.assert_allclose(ranker.compute_score(pairs), want, rtol=0, atol=1e-6)
    spy.longest = 0
    ranker.compute_score([("what is a panda?", HUGE)])
    assert spy.longest <= 64 * long_text.CHARS_PER_TOKEN + 300  # 1 MB in, a few kB tokenized (plus a prompt)


def test_clip_keeps_every_token_that_truncation_keeps(bert_cross_encoder):
    tokenizer = Reranker(bert_cross_encoder).tokenizer
    texts = [HUGE, "short", SPACES_THEN_WORDS, "\n" * 10_000 + HUGE[:50_000]]
    clipped = clip_for_truncation(tokenizer, texts, 100)
    assert clipped[1] == "short" and clipped[2] == SPACES_THEN_WORDS and len(clipped[0]) < 5_000
    for original, cut in zip(texts, clipped):
        full = tokenizer(original, add_special_tokens=False)["input_ids"][:100]
        assert tokenizer(cut, add_special_tokens=False)["input_ids"][:100] == full


def test_training_rows_are_cut_before_the_collator_tokenizes_them(tmp_path, bi_encoder):
    """The embedding and ColBERT trainers pass ``clip_for_truncation`` to ``training_view``."""
    import json
    from functools import partial

    pytest.importorskip("datasets")
    from rag_retrieval_train.data import load_examples, training_view

    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"query": "what is a panda?", "pos": [HUGE], "neg": ["Paris is in France."]}) + "\n")
    tokenizer = Reranker(bi_encoder).model.tokenizer
    clip = partial(clip_for_truncation, tokenizer, max_tokens=64)
    row = training_view(load_examples(data), kind="infonce", group_size=2, clip=clip)[0]
    assert len(row["positive"]) <= 64 * long_text.CHARS_PER_TOKEN + 256
    assert row["negative_1"] == "Paris is in France." and row["query"] == "what is a panda?"
    full = tokenizer(HUGE, add_special_tokens=False)["input_ids"][:64]
    assert tokenizer(row["positive"], add_special_tokens=False)["input_ids"][:64] == full
