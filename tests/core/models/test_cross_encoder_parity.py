"""Our cross-encoder scores equal the reference implementations on the same checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kit.peers import import_peer

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import CrossEncoderReranker

QUERY = "what is a panda?"
DOCS = [
    "The giant panda is a bear native to China.",
    "Pandas eat bamboo for most of the day and live in mountain forests.",
    "Paris is the capital and most populous city of France. " * 12,  # longer than max_length
    "A python is a large snake.",
    "Mount Everest is the highest mountain above sea level. The red panda is not a bear. " * 6,
]
PAIRS = [(QUERY, d) for d in DOCS] + [("who wrote hamlet?", "Shakespeare wrote Hamlet, Macbeth and many other plays.")]
MAX_LENGTH = 64


def st_scores(path, pairs, max_length=MAX_LENGTH) -> np.ndarray:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(path), max_length=max_length, device="cpu", activation_fn=torch.nn.Identity())
    logits = np.asarray(model.predict(pairs, batch_size=4, show_progress_bar=False), dtype=np.float64)
    return logits if logits.ndim == 1 else logits[:, 1] - logits[:, 0]


def flag_scores(path, pairs, max_length=MAX_LENGTH) -> np.ndarray:
    FlagReranker = import_peer("FlagEmbedding").FlagReranker

    model = FlagReranker(str(path), use_fp16=False, devices="cpu", max_length=max_length)
    return np.asarray(model.compute_score(pairs, batch_size=4), dtype=np.float64)


@pytest.mark.parametrize("fixture", ["bert_cross_encoder", "bert_cross_encoder_2logit", "xlmr_cross_encoder"])
def test_scores_equal_sentence_transformers_cross_encoder(fixture, request):
    path = request.getfixturevalue(fixture)
    ranker = Reranker(path, max_length=MAX_LENGTH, batch_size=4)
    assert isinstance(ranker, CrossEncoderReranker)
    np.testing.assert_allclose(ranker.compute_score(PAIRS), st_scores(path, PAIRS), atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", ["bert_cross_encoder", "xlmr_cross_encoder"])
def test_scores_equal_flag_reranker(fixture, request):
    path = request.getfixturevalue(fixture)
    ranker = Reranker(path, max_length=MAX_LENGTH, batch_size=3)
    np.testing.assert_allclose(ranker.compute_score(PAIRS), flag_scores(path, PAIRS), atol=1e-5, rtol=0)
    normalized = ranker.compute_score(PAIRS, normalize=True)
    np.testing.assert_allclose(normalized, 1 / (1 + np.exp(-flag_scores(path, PAIRS))), atol=1e-6, rtol=0)


def test_long_query_is_truncated_like_flag_reranker(bert_cross_encoder):
    """A query longer than 3/4 of max_length keeps its first tokens and leaves room for the document."""
    long_query = "who wrote hamlet and how tall is everest and when was the tower built " * 8
    pairs = [(long_query, d) for d in DOCS]
    ranker = Reranker(bert_cross_encoder, max_length=MAX_LENGTH)
    np.testing.assert_allclose(ranker.compute_score(pairs), flag_scores(bert_cross_encoder, pairs), atol=1e-5, rtol=0)


def test_two_logit_head_normalizes_to_softmax_of_positive_label(bert_cross_encoder_2logit):
    from sentence_transformers import CrossEncoder

    probs = CrossEncoder(str(bert_cross_encoder_2logit), max_length=MAX_LENGTH, device="cpu").predict(
        PAIRS, apply_softmax=True, show_progress_bar=False
    )[:, 1]
    ours = Reranker(bert_cross_encoder_2logit, max_length=MAX_LENGTH).compute_score(PAIRS, normalize=True)
    np.testing.assert_allclose(ours, probs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fixture", ["bert_cross_encoder", "xlmr_cross_encoder"])
def test_split_max_equals_truncate_on_short_documents(fixture, request):
    path = request.getfixturevalue(fixture)
    short = [(QUERY, d) for d in DOCS[:2] + DOCS[3:4]]
    truncate = Reranker(path, max_length=MAX_LENGTH).compute_score(short)
    split = Reranker(path, max_length=MAX_LENGTH, long_doc="split-max", overlap=4).compute_score(short)
    np.testing.assert_allclose(split, truncate, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fixture", ["bert_cross_encoder", "xlmr_cross_encoder"])
def test_split_max_is_the_max_over_reference_windows(fixture, request):
    """Reference: windows cut by hand from the document's token ids, each scored by the bare model."""
    prepare_for_model_compat = import_peer("FlagEmbedding.utils.tokenizer_compat").prepare_for_model_compat
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = request.getfixturevalue(fixture)
    overlap = 6
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    ranker = Reranker(path, max_length=MAX_LENGTH, long_doc="split-max", overlap=overlap, batch_size=2)
    for doc in (DOCS[2], DOCS[4]):
        q_ids = tokenizer(QUERY, add_special_tokens=False)["input_ids"]
        d_ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
        room = MAX_LENGTH - tokenizer.num_special_tokens_to_add(pair=True) - len(q_ids)
        starts = range(0, max(len(d_ids) - overlap, 1), room - overlap)
        windows = [d_ids[s : s + room] for s in starts]
        assert windows[-1][-1] == d_ids[-1], "reference windows must cover the whole document"
        with torch.inference_mode():
            ref = max(
                model(
                    **{
                        k: torch.tensor([v])
                        for k, v in prepare_for_model_compat(tokenizer, q_ids, w, truncation=False).items()
                    }
                )
                .logits[0, 0]
                .item()
                for w in windows
            )
        assert len(windows) > 1
        assert ranker.compute_score([(QUERY, doc)])[0] == pytest.approx(ref, abs=1e-5)


def test_split_max_never_scores_below_truncate(bert_cross_encoder):
    """The first window is the truncated document, so the max over windows cannot be lower."""
    pairs = [(QUERY, d) for d in DOCS]
    truncate = np.array(Reranker(bert_cross_encoder, max_length=MAX_LENGTH).compute_score(pairs))
    split = np.array(
        Reranker(bert_cross_encoder, max_length=MAX_LENGTH, long_doc="split-max", overlap=8).compute_score(pairs)
    )
    assert np.all(split >= truncate - 1e-6)
    assert np.any(split > truncate + 1e-6)


def test_scores_do_not_depend_on_batch_size_or_order(bert_cross_encoder):
    ranker = Reranker(bert_cross_encoder, max_length=MAX_LENGTH, long_doc="split-max", overlap=8)
    base = np.array(ranker.compute_score(PAIRS, batch_size=1))
    np.testing.assert_allclose(ranker.compute_score(PAIRS, batch_size=64), base, atol=1e-5)
    reversed_scores = ranker.compute_score(PAIRS[::-1], batch_size=3)
    np.testing.assert_allclose(reversed_scores[::-1], base, atol=1e-5)
