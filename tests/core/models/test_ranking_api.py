"""rank / rank_many / RankedResults as a user sees them."""

from __future__ import annotations

import numpy as np
import pytest

from rag_retrieval_integrations import RankedResults, Reranker

DOCS = [
    "Paris is the capital and most populous city of France.",
    "The giant panda is a bear native to China.",
    "Pandas eat bamboo for most of the day.",
    "A python is a large snake found in Africa.",
]


@pytest.fixture(scope="module")
def ranker(bert_cross_encoder):
    return Reranker(bert_cross_encoder, max_length=64)


def test_rank_orders_best_first_and_keeps_original_indices(ranker):
    scores = ranker.compute_score([("what is a panda?", d) for d in DOCS])
    results = ranker.rank("what is a panda?", DOCS)
    assert isinstance(results, RankedResults)
    assert results.indices == list(np.argsort(-np.asarray(scores), kind="stable"))
    assert [r.rank for r in results] == [1, 2, 3, 4]
    for r in results:
        assert r.text == DOCS[r.index]
        assert r.score == pytest.approx(scores[r.index])
    assert results.scores == sorted(results.scores, reverse=True)


def test_top_k_and_indexing(ranker):
    results = ranker.rank("what is a panda?", DOCS, top_k=2)
    assert len(results) == 2
    full = ranker.rank("what is a panda?", DOCS)
    assert results.indices == full.indices[:2]
    assert full[0] == results[0]
    assert full[:2].indices == results.indices
    assert full.top_k(1).texts == [DOCS[full[0].index]]
    assert list(iter(full))[-1] == full[-1]
    assert "what is a panda?" in repr(full)
    with pytest.raises(ValueError, match="top_k"):
        full.top_k(-1)


def test_normalize_maps_to_unit_interval_and_keeps_order(ranker):
    raw = ranker.rank("what is a panda?", DOCS)
    normalized = ranker.rank("what is a panda?", DOCS, normalize=True)
    assert raw.indices == normalized.indices
    assert all(0.0 < s < 1.0 for s in normalized.scores)
    np.testing.assert_allclose(normalized.scores, 1 / (1 + np.exp(-np.asarray(raw.scores))), atol=1e-9)


def test_ties_keep_input_order(ranker):
    results = ranker.rank("what is a panda?", ["same text", "same text", "same text"])
    assert results.indices == [0, 1, 2]


def test_rank_many_equals_rank_per_query(ranker):
    queries = ["what is a panda?", "capital of france", "snake"]
    doc_lists = [DOCS, DOCS[::-1], DOCS[:2]]
    many = ranker.rank_many(queries, doc_lists, top_k=3)
    assert [r.query for r in many] == queries
    for q, docs, got in zip(queries, doc_lists, many):
        expected = ranker.rank(q, docs, top_k=3)
        assert got.indices == expected.indices
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-5)


def _count_scored_pairs(ranker, monkeypatch) -> list[int]:
    """The number of pairs of each ``_score`` call the ranker makes from now on."""
    calls: list[int] = []
    original = type(ranker)._score

    def spy(self, queries, docs, batch_size):
        calls.append(len(docs))
        return original(self, queries, docs, batch_size)

    monkeypatch.setattr(type(ranker), "_score", spy)
    return calls


def test_rank_many_scores_all_queries_in_one_pass(ranker, monkeypatch):
    calls = _count_scored_pairs(ranker, monkeypatch)
    ranker.rank_many(["a", "b", "c"], [DOCS, DOCS, DOCS[:1]])
    assert calls == [9]


def test_score_many_gives_each_querys_scores_in_input_order_from_one_pass(ranker, monkeypatch):
    queries, doc_lists = ["what is a panda?", "capital of france", "snake"], [DOCS, DOCS[::-1], []]
    expected = [ranker.compute_score([(q, d) for d in docs]) if docs else [] for q, docs in zip(queries, doc_lists)]
    calls = _count_scored_pairs(ranker, monkeypatch)
    got = ranker.score_many(queries, doc_lists)
    assert calls == [8] and [len(g) for g in got] == [4, 4, 0]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-5)
    normalized = ranker.score_many(queries[:1], doc_lists[:1], normalize=True)
    np.testing.assert_allclose(normalized[0], 1 / (1 + np.exp(-np.asarray(got[0]))), atol=1e-9)
    with pytest.raises(ValueError, match="one list of documents per query"):
        ranker.score_many(queries, doc_lists[:2])


def test_embedding_ranker_rank_many(bi_encoder):
    ranker = Reranker(bi_encoder, model_type="embedding")
    many = ranker.rank_many(["what is a panda?", "capital of france"], [DOCS, DOCS])
    assert [len(r) for r in many] == [4, 4]
    single = ranker.rank("capital of france", DOCS)
    np.testing.assert_allclose(many[1].scores, single.scores, atol=1e-6)


def test_threads_sharing_one_model_get_sequential_results(bi_encoder):
    """One loaded model used from 8 threads at once gives what calls one after another give.

    Ranking in split-max mode and encoding tokenize with different truncation settings, which
    a fast tokenizer keeps as shared state: without the model's lock this test fails.
    """
    from concurrent.futures import ThreadPoolExecutor

    ranker = Reranker(bi_encoder, max_length=24, long_doc="split-max", overlap=4)
    batches = [[d * (1 + (i + j) % 4) for j, d in enumerate(DOCS)] for i in range(4)]

    def call(i: int) -> list[float]:
        batch = batches[i % 4]
        if i % 2:
            return ranker.encode_documents(batch).ravel().tolist()
        return ranker.rank("what is a panda?", batch).scores

    sequential = [call(i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(call, range(128)))
    assert threaded == [sequential[i % 8] for i in range(128)]


@pytest.mark.parametrize("fixture", ["bert_cross_encoder", "decoder_llm"])
def test_a_pair_given_twice_is_scored_once_and_gets_the_same_score(request, monkeypatch, fixture):
    """Two rows of one padded batch can differ in the last bits; duplicates must not, or a stable
    sort would not keep them in input order (seen with checkpoints built under transformers 5.0-5.2)."""
    ranker = Reranker(request.getfixturevalue(fixture))
    seen = []
    original = type(ranker)._score

    def spy(self, queries, docs, *args, **kwargs):
        seen.append(len(docs))
        return original(self, queries, docs, *args, **kwargs)

    monkeypatch.setattr(type(ranker), "_score", spy)
    docs = ["The giant panda is a bear.", "Pandas eat bamboo.", "The giant panda is a bear."]
    scores = ranker.compute_score([("what is a panda?", d) for d in docs] + [("other query", docs[0])])
    assert seen == [3]  # (query, doc) pairs: 4 given, 3 distinct
    assert scores[0] == scores[2]
    ranked = ranker.rank("what is a panda?", docs)
    assert [r.index for r in ranked if r.text == docs[0]] == [0, 2]


def test_per_call_options_follow_the_score_method_in_use(decoder_llm, monkeypatch):
    """The accepted per-call options were cached per class: once a test spied on a class's _score
    (a *args wrapper), the class refused its real options after the spy was gone."""
    ranker = Reranker(decoder_llm)
    real = type(ranker)._score
    with monkeypatch.context() as m:
        m.setattr(type(ranker), "_score", lambda self, queries, docs, batch_size: real(self, queries, docs, batch_size))
        with pytest.raises(TypeError, match="cutoff_layers"):
            ranker.compute_score([("q", "d")], cutoff_layers=[1])
    assert len(ranker.compute_score([("q", "d")], cutoff_layers=[1])) == 1
