"""The learned sparse family (SPLADE through sentence-transformers' ``SparseEncoder``) and ``SparseIndex``:
term weights equal ``SparseEncoder.encode_*``, scores equal its similarity, detection and refusals,
and the index's search equal to ranking the whole corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from kit import checkpoints
from kit.texts import QUERIES, TEXTS

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import CorruptIndexError, InvalidCheckpointError, SparseIndex, SparseModel


@pytest.fixture(scope="module")
def splade(tmp_path_factory):
    return checkpoints.build_splade(tmp_path_factory.mktemp("models") / "splade")


@pytest.fixture(scope="module")
def ranker(splade):
    return Reranker(splade)


def dense(matrix) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else matrix.to_dense().numpy()


def test_a_sparse_encoder_folder_is_detected_and_its_weights_are_sentence_transformers(splade, ranker):
    from sentence_transformers import SparseEncoder

    assert isinstance(ranker, SparseModel) and ranker.model_type == "sparse"
    peer = SparseEncoder(str(splade), device="cpu")
    np.testing.assert_allclose(
        dense(ranker.encode_documents(TEXTS)), dense(peer.encode_document(TEXTS)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        dense(ranker.encode_queries(QUERIES)), dense(peer.encode_query(QUERIES)), rtol=1e-5, atol=1e-6
    )
    # the score is the model's similarity (dot product) of the two encodings
    want = peer.similarity(peer.encode_query(QUERIES[:1]), peer.encode_document(TEXTS))[0]
    assert ranker.compute_score([(QUERIES[0], t) for t in TEXTS]) == pytest.approx(want.tolist(), rel=1e-5)
    assert ranker.rank(QUERIES[0], TEXTS).indices == torch.argsort(want, descending=True, stable=True).tolist()
    assert ranker.vocab_size == ranker.encode_documents(TEXTS[:1]).shape[1]
    terms = ranker.decode(ranker.encode_queries(QUERIES[:1])[0], top_k=3)
    assert len(terms) == 3 and terms[0][1] >= terms[1][1] >= terms[2][1] > 0


def test_max_active_dims_and_max_length_reach_sentence_transformers(splade, ranker):
    capped = Reranker(splade, max_active_dims=4, max_length=16)
    weights = capped.encode_documents(TEXTS)
    assert np.diff(weights.indptr).max() <= 4
    assert capped.model.max_seq_length == 16
    with pytest.raises(ValueError, match="max_active_dims must be a positive integer"):
        Reranker(splade, max_active_dims=0)


def test_what_is_not_a_sparse_encoder_is_refused(tmp_path, bi_encoder):
    mlm = checkpoints.build_masked_lm(tmp_path / "mlm")
    with pytest.raises(InvalidCheckpointError, match="rag-retrieval-train sparse adds the SPLADE head"):
        Reranker(mlm, "sparse")
    with pytest.raises(InvalidCheckpointError, match="SentenceTransformer folder, not a SparseEncoder"):
        Reranker(bi_encoder, "sparse")
    with pytest.raises(ValueError, match="PyTorch only"):
        Reranker(checkpoints.build_splade(tmp_path / "splade"), backend="onnx")


def test_for_training_builds_splade_and_inference_free_models(tmp_path):
    mlm = checkpoints.build_masked_lm(tmp_path / "mlm")
    splade = SparseModel.for_training(mlm)
    assert [type(m).__name__ for m in splade.model] == ["MLMTransformer", "SpladePooling"]
    free = SparseModel.for_training(mlm, architecture="inference-free", query_prompt="q: ")
    free.model.save(str(tmp_path / "free"))
    loaded = Reranker(tmp_path / "free")
    assert loaded.model_type == "sparse" and loaded.model.prompts["query"] == "q: "
    # an inference-free query is its tokens' static weights: only terms of the query itself
    query = loaded.encode_queries(["panda bear"])
    ids = set(loaded.model.tokenizer("q: panda bear", add_special_tokens=False)["input_ids"])
    assert set(query.indices.tolist()) <= ids | set(loaded.model.tokenizer.all_special_ids)
    with pytest.raises(ValueError, match="architecture must be"):
        SparseModel.for_training(mlm, architecture="dense")


# ---- SparseIndex -------------------------------------------------------------------------------


def test_search_equals_ranking_the_corpus(ranker):
    index = SparseIndex(ranker)
    index.add(TEXTS, ids=[f"d{i}" for i in range(len(TEXTS))], metadatas=[{"i": i} for i in range(len(TEXTS))])
    for query in QUERIES:
        want = ranker.rank(query, TEXTS)
        hits = index.search(query, k=len(TEXTS))
        overlapping = [i for i, s in zip(want.indices, want.scores) if s > 0]
        assert [h.id for h in hits] == [f"d{i}" for i in overlapping]
        assert [h.score for h in hits] == pytest.approx([s for s in want.scores if s > 0], rel=1e-5)
        assert [h.metadata["i"] for h in hits] == overlapping
    assert index.nnz == ranker.encode_documents(TEXTS).nnz
    np.testing.assert_allclose(dense(index.weights("d1")), dense(ranker.encode_documents(TEXTS[1:2])), atol=1e-6)


def test_add_replace_delete_save_and_load(ranker, tmp_path):
    index = SparseIndex(ranker)
    index.add(TEXTS[:5], ids=list("abcde"))
    index.add([TEXTS[6]], ids=["b"], metadatas=[{"new": True}])
    index.delete(["a", "d"])
    assert index.ids == ["c", "e", "b"]
    fresh = SparseIndex(ranker)
    fresh.add([TEXTS[2], TEXTS[4], TEXTS[6]], ids=["c", "e", "b"])
    before = index.search_many(QUERIES, k=3)
    for got, want in zip(before, fresh.search_many(QUERIES, k=3)):  # encoded in other batches: float noise
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-5)
    index.save(tmp_path / "sparse")
    manifest = json.loads((tmp_path / "sparse" / "manifest.json").read_text())
    assert manifest["vocab_size"] == ranker.vocab_size and manifest["nnz"] == index.nnz
    loaded = SparseIndex.load(tmp_path / "sparse")  # the model from the manifest
    assert loaded.ids == index.ids and loaded.search_many(QUERIES, k=3) == before
    assert SparseIndex.load(tmp_path / "sparse", ranker).get("b").metadata == {"new": True}
    # the weights file replaced by another index's of the same size is refused by its checksum
    other = SparseIndex(ranker)
    other.add([TEXTS[0], TEXTS[1], TEXTS[3]], ids=["c", "e", "b"])
    other.save(tmp_path / "other")
    (tmp_path / "sparse" / "weights.npz").write_bytes((tmp_path / "other" / "weights.npz").read_bytes())
    with pytest.raises(CorruptIndexError):
        SparseIndex.load(tmp_path / "sparse")


def test_bad_vectors_and_models(ranker, bi_encoder):
    index = SparseIndex(ranker)
    with pytest.raises(TypeError, match="SciPy sparse matrix"):
        index.add_vectors(["a"], np.zeros((1, ranker.vocab_size)))
    from scipy import sparse

    with pytest.raises(ValueError, match="columns"):
        index.add_vectors(["a"], sparse.csr_matrix((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="1 rows for 2 texts"):
        index.add_vectors(["a", "b"], ranker.encode_documents(["a"]))
    with pytest.raises(TypeError, match="sparse model"):
        SparseIndex(Reranker(bi_encoder))


def test_a_sparse_part_in_a_hybrid_saves_and_loads(ranker, tmp_path):
    pytest.importorskip("bm25s")
    from rag_retrieval_integrations.core import BM25Index, HybridIndex

    hybrid = HybridIndex({"bm25": BM25Index(), "splade": SparseIndex(ranker)}, fusion="zscore")
    hybrid.add(TEXTS)
    before = hybrid.search_many(QUERIES, k=3)
    hybrid.save(tmp_path / "hybrid")
    loaded = HybridIndex.load(tmp_path / "hybrid")
    assert isinstance(loaded.parts["splade"], SparseIndex) and loaded.search_many(QUERIES, k=3) == before
