"""``long_doc="split-max"`` with the default options works at every ``max_length``.

The default overlap (32 tokens) is reduced, per window, where a short ``max_length`` or a long
query leaves a window too small for it; only an explicit overlap that no window can hold, or a
``max_length`` with no room for a document, is an error, raised when the model is loaded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kit import checkpoints
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rag_retrieval_integrations import Reranker

WORDS = " ".join(checkpoints.CORPUS).split()
LONG_DOC = " ".join(WORDS[i % len(WORDS)] for i in range(2000))  # 2,000 words
SHORT_QUERY = "what is a panda?"
LONG_QUERY = " ".join(WORDS[:300])  # longer than any query budget below
MAX_LENGTHS = [16, 64, 128, 140, 512]


@pytest.fixture(scope="module")
def bert_512(tmp_path_factory):
    """A 1-logit BERT cross-encoder with 512 positions, so that every length above fits."""
    return checkpoints.build_bert_cross_encoder(tmp_path_factory.mktemp("models") / "bert-512", max_positions=512)


def reference_split_max(path, query: str, doc: str, max_length: int, overlap: int = 32) -> float:
    """Split-and-max by hand: ``[CLS] q [SEP] window [SEP]`` for windows cut from the document's
    token ids, each sharing ``min(overlap, window // 2)`` tokens, scored by the bare model."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    specials = 3
    q_budget = min(max_length - int(max_length * 0.25 + 0.5), max_length - specials - 1)
    q_ids = tokenizer(query, add_special_tokens=False)["input_ids"][:q_budget]
    d_ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
    room = max_length - specials - len(q_ids)
    step_overlap = min(overlap, room // 2)
    starts = range(0, max(len(d_ids) - step_overlap, 1), room - step_overlap)
    windows = [d_ids[s : s + room] for s in starts]
    assert windows[-1][-1] == d_ids[-1], "the reference windows must cover the whole document"
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    best = -np.inf
    with torch.inference_mode():
        for i in range(0, len(windows), 256):
            chunk = windows[i : i + 256]
            width = max(len(w) for w in chunk) + len(q_ids) + specials
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
            for row, w in enumerate(chunk):
                seq = [cls, *q_ids, sep, *w, sep]
                ids[row, : len(seq)] = torch.tensor(seq)
                types[row, len(q_ids) + 2 : len(seq)] = 1
                mask[row, : len(seq)] = 1
            logits = model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits[:, 0]
            best = max(best, float(logits.max()))
    return best


@pytest.mark.parametrize("max_length", MAX_LENGTHS)
@pytest.mark.parametrize("query", [SHORT_QUERY, LONG_QUERY], ids=["short-query", "long-query"])
def test_cross_encoder_defaults_score_a_long_document_as_the_max_over_its_windows(bert_512, max_length, query):
    ranker = Reranker(bert_512, long_doc="split-max", max_length=max_length, batch_size=256)
    got = ranker.compute_score([(query, LONG_DOC)])[0]
    assert got == pytest.approx(reference_split_max(bert_512, query, LONG_DOC, max_length), abs=1e-5)


def test_the_smallest_max_length_that_holds_a_pair_works_and_one_less_is_refused_at_load(bert_512):
    # 3 special tokens, a 1-token query and a 1-token document
    assert len(Reranker(bert_512, long_doc="split-max", max_length=5).compute_score([(SHORT_QUERY, LONG_DOC)])) == 1
    with pytest.raises(ValueError, match="max_length=4"):
        Reranker(bert_512, long_doc="split-max", max_length=4)


def test_a_query_of_mixed_lengths_gets_its_own_overlap(bert_512):
    """Pairs whose windows allow different overlaps, scored in one call, equal each scored alone."""
    ranker = Reranker(bert_512, long_doc="split-max", max_length=64)
    pairs = [(SHORT_QUERY, LONG_DOC), (LONG_QUERY, LONG_DOC), (SHORT_QUERY, "a short document")]
    together = ranker.compute_score(pairs)
    alone = [ranker.compute_score([pair])[0] for pair in pairs]
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)
    assert together[1] == pytest.approx(reference_split_max(bert_512, LONG_QUERY, LONG_DOC, 64), abs=1e-5)


def test_an_explicit_overlap_no_window_can_hold_is_refused_at_load(bert_512, bi_encoder, decoder_llm):
    # at max_length=32 a BERT window holds at most 28 document tokens, and shares at most 14
    with pytest.raises(ValueError, match=r"overlap=20 never fits: at max_length=32 .* at most 28 document tokens"):
        Reranker(bert_512, long_doc="split-max", max_length=32, overlap=20)
    assert Reranker(bert_512, long_doc="split-max", max_length=32, overlap=14).overlap == 14
    Reranker(bert_512, max_length=32, overlap=20)  # truncate mode has no windows: nothing to check
    with pytest.raises(ValueError, match="overlap=20 never fits"):
        Reranker(bi_encoder, long_doc="split-max", max_length=32, overlap=20)
    with pytest.raises(ValueError, match="overlap=200 never fits"):
        Reranker(decoder_llm, long_doc="split-max", max_length=256, overlap=200)


@pytest.mark.parametrize("max_length", MAX_LENGTHS)
def test_embedding_defaults_work_at_every_max_length(bi_encoder, max_length):
    capped = min(max_length, 256)  # the tiny bi-encoder has 256 positions
    ranker = Reranker(bi_encoder, long_doc="split-max", max_length=capped)
    scores = ranker.compute_score([(SHORT_QUERY, LONG_DOC), (LONG_QUERY, LONG_DOC)])
    assert np.all(np.isfinite(scores))


@pytest.mark.parametrize("max_length", [128, 140, 512])
@pytest.mark.parametrize("query", [SHORT_QUERY, LONG_QUERY], ids=["short-query", "long-query"])
def test_llm_defaults_work_at_every_max_length_that_holds_the_prompt(decoder_llm, max_length, query):
    split = Reranker(decoder_llm, long_doc="split-max", max_length=max_length, batch_size=64)
    truncate = Reranker(decoder_llm, max_length=max_length)
    got = split.compute_score([(query, LONG_DOC)])[0]
    # the first window is the truncated document, so the best window cannot score below it
    assert got >= truncate.compute_score([(query, LONG_DOC)])[0] - 1e-5


def test_llm_max_length_below_its_prompt_is_refused_at_load(decoder_llm):
    with pytest.raises(ValueError, match="max_length=16"):
        Reranker(decoder_llm, long_doc="split-max", max_length=16)


def test_llm_scores_do_not_depend_on_the_other_documents_of_the_call(decoder_llm):
    """A document whose passage prefix tokenizes differently (leading spaces) once shortened the
    query of every pair in the call at a short max_length."""
    ranker = Reranker(decoder_llm, max_length=64)
    doc, odd = LONG_DOC, " " * 300 + "The giant panda is a bear."
    together = ranker.compute_score([(SHORT_QUERY, doc), (SHORT_QUERY, odd)])
    alone = [ranker.compute_score([(SHORT_QUERY, d)])[0] for d in (doc, odd)]
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)
