"""Hub ids go through the same loading code as local folders.

There is no network here, so the test fills a Hugging Face cache folder in the hub's own
layout (``kit/hub.py``) and loads ``"org/name"`` offline from it, exactly as a user's machine
does after a first download.
"""

from __future__ import annotations

import numpy as np
import pytest
from kit.hub import fill_hub_cache

from rag_retrieval_integrations import CheckpointNotFoundError, Reranker
from rag_retrieval_integrations.core import CrossEncoderReranker, EmbeddingModel


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch, bert_cross_encoder, bi_encoder):
    repos = {"rag-test/tiny-ce": bert_cross_encoder, "rag-test/tiny-bi": bi_encoder}
    return fill_hub_cache(monkeypatch, tmp_path / "hub", repos)


def test_hub_id_loads_and_detects_like_a_folder(hub_cache, bert_cross_encoder, bi_encoder):
    pairs = [("what is a panda?", "The giant panda is a bear."), ("q", "Paris is in France.")]
    from_hub = Reranker("rag-test/tiny-ce", max_length=64)
    assert isinstance(from_hub, CrossEncoderReranker) and not from_hub.checkpoint.is_local
    np.testing.assert_allclose(
        from_hub.compute_score(pairs), Reranker(bert_cross_encoder, max_length=64).compute_score(pairs), atol=1e-6
    )
    embedder = Reranker("rag-test/tiny-bi")
    assert isinstance(embedder, EmbeddingModel)
    np.testing.assert_allclose(embedder.compute_score(pairs), Reranker(bi_encoder).compute_score(pairs), atol=1e-6)


def test_unknown_hub_id_offline_is_a_clear_error(hub_cache):
    with pytest.raises(CheckpointNotFoundError, match="rag-test/absent"):
        Reranker("rag-test/absent")
