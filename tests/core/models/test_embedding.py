"""The embedding family scores like sentence-transformers on the same checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rag_retrieval_integrations import Reranker

QUERIES = ["what is a panda?", "capital of france"]
DOCS = [
    "The giant panda is a bear native to China.",
    "Paris is the capital and most populous city of France.",
    "Pandas eat bamboo. " * 60,  # longer than max_length
]


def reference(path, queries, docs, truncate_dim=None):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", truncate_dim=truncate_dim)
    q = model.encode(queries, convert_to_tensor=True)
    d = model.encode(docs, convert_to_tensor=True)
    return torch.nn.functional.cosine_similarity(q, d).numpy()


def test_cosine_scores_equal_sentence_transformers(bi_encoder):
    queries = [QUERIES[0]] * 3 + [QUERIES[1]] * 3
    docs = DOCS * 2
    ours = Reranker(bi_encoder, model_type="embedding").compute_score(list(zip(queries, docs)))
    np.testing.assert_allclose(ours, reference(bi_encoder, queries, docs), atol=1e-5)


def test_the_family_is_the_embedding_model_under_both_names(bi_encoder):
    from rag_retrieval_integrations import EmbeddingModel, EmbeddingReranker

    model = Reranker(bi_encoder)
    assert isinstance(model, EmbeddingModel) and EmbeddingReranker is EmbeddingModel  # the old name still imports
    assert repr(model).startswith("EmbeddingModel(")


def test_truncate_dim_equals_sentence_transformers(bi_encoder):
    ranker = Reranker(bi_encoder, truncate_dim=8)
    ours = ranker.compute_score([(QUERIES[0], d) for d in DOCS])
    np.testing.assert_allclose(ours, reference(bi_encoder, [QUERIES[0]] * 3, DOCS, truncate_dim=8), atol=1e-5)
    assert not np.allclose(ours, reference(bi_encoder, [QUERIES[0]] * 3, DOCS), atol=1e-3)
    assert ranker.embedding_dim == 8 == ranker.encode_queries(QUERIES[:1]).shape[1]
    full = Reranker(bi_encoder)
    assert full.embedding_dim == full.encode_documents(DOCS).shape[1] > 8


def test_truncate_dim_larger_than_model(bi_encoder):
    with pytest.raises(ValueError, match="truncate_dim=4096"):
        Reranker(bi_encoder, truncate_dim=4096)


def test_split_max_equals_truncate_on_short_documents_and_covers_long_ones(bi_encoder):
    pairs = [(QUERIES[0], d) for d in DOCS]
    truncate = Reranker(bi_encoder, max_length=32).compute_score(pairs)
    split = Reranker(bi_encoder, max_length=32, long_doc="split-max", overlap=4).compute_score(pairs)
    np.testing.assert_allclose(split[:2], truncate[:2], atol=1e-6)
    assert split[2] >= truncate[2] - 1e-6


def test_split_max_is_the_max_over_window_texts(bi_encoder):
    from transformers import AutoTokenizer

    from rag_retrieval_integrations.core.text.text_windows import split_into_windows

    long_doc = "Paris is the capital of France. " * 3 + "The giant panda is a bear native to China. " * 5
    ranker = Reranker(bi_encoder, max_length=24, long_doc="split-max", overlap=4)
    windows, owner = split_into_windows(AutoTokenizer.from_pretrained(bi_encoder), [long_doc], 22, 4)
    assert len(windows) > 2 and set(owner) == {0}
    assert all(w in long_doc for w in windows)
    expected = reference(bi_encoder, [QUERIES[0]] * len(windows), windows).max()
    assert ranker.compute_score([(QUERIES[0], long_doc)])[0] == pytest.approx(expected, abs=1e-5)


def test_prompts_change_the_query_embedding(bi_encoder):
    plain = Reranker(bi_encoder).compute_score([(QUERIES[0], DOCS[0])])
    prompted = Reranker(bi_encoder, query_prompt="query: ").compute_score([(QUERIES[0], DOCS[0])])
    expected = reference(bi_encoder, ["query: " + QUERIES[0]], [DOCS[0]])
    assert prompted[0] == pytest.approx(float(expected[0]), abs=1e-5)
    assert plain[0] != pytest.approx(prompted[0], abs=1e-4)
