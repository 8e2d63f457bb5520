"""The Matryoshka (MRL) index: the funnel against exhaustive search, persistence, and its errors."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from kit.paths import REPO

faiss = pytest.importorskip("faiss")

from kit.texts import QUERIES, TEXTS

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import CorruptIndexError, IndexNotFoundError, MRLIndex, write_metadata
from rag_retrieval_integrations.core.indexes.mrl_encoder import trained_matryoshka_dims
from rag_retrieval_integrations.core.indexes.mrl_vectors import (
    prefix_vectors,
    rescore,
    rescore_stored,
    vector_from_text,
    vector_to_text,
)

DIM = 32  # the tiny bi-encoder's


@pytest.fixture(scope="module")
def ranker(bi_encoder):
    return Reranker(bi_encoder)


@pytest.fixture(scope="module")
def mrl_checkpoint(bi_encoder, tmp_path_factory) -> Path:
    """The tiny bi-encoder with the metadata our trainer writes after ``--mrl_dims 32,16,8``."""
    folder = tmp_path_factory.mktemp("models") / "bi-encoder-mrl"
    shutil.copytree(bi_encoder, folder)
    write_metadata(folder, "embedding", matryoshka_dims=[32, 16, 8], embedding_dim=32)
    return folder


def clustered_vectors(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Unit vectors around 20 centres, variance falling along the dims (as a Matryoshka model's do)."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(np.arange(1, dim + 1))
    centres = rng.normal(size=(20, dim)) * scale
    x = centres[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, dim)) * scale
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exhaustive(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    flat = faiss.IndexFlatIP(docs.shape[1])
    flat.add(docs)
    return flat.search(queries, k)


def vector_index(docs: np.ndarray, **options) -> MRLIndex:
    index = MRLIndex(dim=docs.shape[1], **options)
    index.add([f"doc {i}" for i in range(len(docs))], ids=[str(i) for i in range(len(docs))], embeddings=docs)
    return index


# ---- the funnel ---------------------------------------------------------------------------------


def test_full_search_dim_equals_exhaustive_search():
    docs, queries = clustered_vectors(2000), clustered_vectors(50, seed=1)
    scores, rows = vector_index(docs, search_dim=64).search_rows(queries, 10)
    want_scores, want_rows = exhaustive(queries, docs, 10)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_short_search_dim_rescores_with_full_vectors():
    docs, queries = clustered_vectors(2000), clustered_vectors(50, seed=1)
    index = vector_index(docs, search_dim=16, shortlist_factor=10)
    scores, rows = index.search_rows(queries, 10)
    # every returned score is the full-vector cosine of that document, best first
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, docs[rows]), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()
    # the result is the best of the 16-dim shortlist by full vectors
    prefix_q, prefix_d = prefix_vectors(queries, 16, "cosine"), prefix_vectors(docs, 16, "cosine")
    shortlist = np.argsort(-(prefix_q @ prefix_d.T), axis=1, kind="stable")[:, :100]
    for q in range(len(queries)):
        full = docs[shortlist[q]] @ queries[q]
        np.testing.assert_array_equal(rows[q], shortlist[q][np.argsort(-full, kind="stable")[:10]])
    # and mostly agrees with exhaustive full-dimension search; a wider shortlist agrees more
    _, want = exhaustive(queries, docs, 10)
    agreement = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, want)])
    _, wider = index.search_rows(queries, 10, shortlist_factor=40)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(wider, want)]) >= agreement >= 0.8


@pytest.mark.parametrize("vector_dtype", ["float32", "float16"])
def test_a_shortlist_covering_the_index_is_exhaustive_search(vector_dtype):
    docs, queries = clustered_vectors(2000), clustered_vectors(50, seed=1)
    index = vector_index(docs, search_dim=4, shortlist_factor=1, vector_dtype=vector_dtype)
    want_scores, want_rows = exhaustive(queries, docs.astype(vector_dtype).astype(np.float32), 10)
    for size in (len(docs), 10 * len(docs)):  # capped at the documents there are
        scores, rows = index.search_rows(queries, 10, shortlist_size=size)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_shortlist_size_is_the_fewest_candidates():
    """The shortlist is ``max(k * shortlist_factor, shortlist_size)`` documents."""
    docs, queries = clustered_vectors(2000), clustered_vectors(50, seed=1)
    index = vector_index(docs, search_dim=8, shortlist_factor=10)
    by_factor = index.search_rows(queries, 10)  # 100 candidates
    for factor, size in ((1, 100), (10, 40), (10, 100)):
        np.testing.assert_array_equal(
            index.search_rows(queries, 10, shortlist_factor=factor, shortlist_size=size)[1], by_factor[1]
        )
    with_size = vector_index(docs, search_dim=8, shortlist_factor=1, shortlist_size=100)
    assert with_size.shortlist_size == 100
    np.testing.assert_array_equal(with_size.search_rows(queries, 10)[1], by_factor[1])
    # more candidates than k * shortlist_factor: closer to exhaustive search
    _, want = exhaustive(queries, docs, 10)
    _, wider = index.search_rows(queries, 10, shortlist_size=1000)
    assert np.mean(wider == want) > np.mean(by_factor[1] == want)


@pytest.mark.parametrize(
    "index_type,options", [("hnsw", {"hnsw_ef_search": 256}), ("ivf", {"nlist": 16, "nprobe": 16})]
)
def test_approximate_first_stages(index_type, options):
    docs, queries = clustered_vectors(2000), clustered_vectors(50, seed=1)
    scores, rows = vector_index(docs, search_dim=64, index_type=index_type, **options).search_rows(queries, 10)
    _, want_rows = exhaustive(queries, docs, 10)
    agreement = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, want_rows)])
    assert agreement >= (1.0 if index_type == "ivf" else 0.98)  # IVF probing every cluster is exact
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, docs[rows]), atol=1e-5)


def test_search_equals_the_embedding_ranker(ranker):
    """Text in, text out: the funnel's scores are the cosine scores ``Reranker.rank`` gives."""
    index = MRLIndex(ranker, search_dim=8)
    index.add(TEXTS, metadatas=[{"i": i} for i in range(len(TEXTS))])
    for query in QUERIES:
        hits = index.search(query, k=5)
        want = ranker.rank(query, TEXTS, top_k=5)
        assert [h.text for h in hits] == [r.text for r in want]
        assert [h.metadata["i"] for h in hits] == [r.index for r in want]
        np.testing.assert_allclose([h.score for h in hits], [r.score for r in want], atol=1e-5)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    # search_many scores all queries in one batch, search one at a time: the same hits, and scores
    # equal up to float32 rounding (a different batch shape sums in a different order)
    for many, one in zip(index.search_many(QUERIES, k=2), [index.search(q, k=2) for q in QUERIES], strict=True):
        assert [(h.id, h.rank, h.text, h.metadata) for h in many] == [(h.id, h.rank, h.text, h.metadata) for h in one]
        np.testing.assert_allclose([h.score for h in many], [h.score for h in one], rtol=0, atol=1e-6)


def test_search_dim_defaults_to_the_smallest_trained_dim(mrl_checkpoint, bi_encoder, caplog):
    assert trained_matryoshka_dims(mrl_checkpoint) == [8, 16, 32]
    assert MRLIndex(mrl_checkpoint).search_dim == 8
    with caplog.at_level(logging.WARNING):
        assert MRLIndex(bi_encoder).search_dim == DIM
    assert "no Matryoshka dims" in caplog.text
    assert MRLIndex(Reranker(mrl_checkpoint, truncate_dim=16)).search_dim == 8


def test_float16_vectors_halve_memory_and_keep_the_ranking():
    docs, queries = clustered_vectors(1000), clustered_vectors(20, seed=1)
    full, half = vector_index(docs, search_dim=16), vector_index(docs, search_dim=16, vector_dtype="float16")
    assert half.nbytes["vectors"] * 2 == full.nbytes["vectors"] == 1000 * 64 * 4
    (s32, r32), (s16, r16) = full.search_rows(queries, 10), half.search_rows(queries, 10)
    np.testing.assert_allclose(s16, s32, atol=2e-3)
    assert np.mean(r16 == r32) > 0.9


def test_small_and_empty_indexes():
    index = MRLIndex(dim=4)
    assert index.search_by_vectors(np.ones((1, 4)), 3) == [[]]
    index.add(["a", "b"], ids=["a", "b"], embeddings=[[1, 0, 0, 0], [0, 1, 0, 0]])
    hits = index.search_by_vectors(np.array([[1.0, 0.5, 0, 0]]), 5)[0]
    assert [h.id for h in hits] == ["a", "b"]
    scores, rows = index.search_rows(np.array([[1.0, 0.5, 0, 0]]), 3)
    assert rows[0].tolist() == [0, 1, -1] and scores[0, 2] == -np.inf
    assert [h.id for h in index.search_by_vectors(np.array([[1.0, 0.5, 0, 0]]), 5, score_threshold=0.5)[0]] == ["a"]


# ---- adding, deleting, saving, loading --------------------------------------------------------


def test_add_replaces_and_delete_removes(ranker):
    index = MRLIndex(ranker, search_dim=8)
    index.add(TEXTS[:4], ids=["a", "b", "c", "d"])
    index.add([TEXTS[5]], ids=["b"], metadatas=[{"new": True}])
    assert len(index) == 4 and index.ids == ["a", "c", "d", "b"]
    assert index.get("b").text == TEXTS[5] and index.get("b").metadata == {"new": True}
    np.testing.assert_allclose(index.vector("b"), ranker.encode_documents([TEXTS[5]])[0], atol=1e-6)
    with pytest.raises(KeyError, match="nothing was deleted"):
        index.delete(["a", "zz"])
    assert len(index) == 4
    index.delete(["a", "d"])
    assert index.ids == ["c", "b"] and "a" not in index
    fresh = MRLIndex(ranker, search_dim=8)
    fresh.add([TEXTS[2], TEXTS[5]], ids=["c", "b"])
    for query in QUERIES:
        got, want = index.search(query, k=2), fresh.search(query, k=2)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(ranker, tmp_path, index_type):
    texts = TEXTS * 10  # 80 documents: enough to train IVF's clusters
    index = MRLIndex(ranker, search_dim=8, index_type=index_type, vector_dtype="float16", shortlist_factor=3)
    ids = index.add(texts, metadatas=[{"i": i, "tags": ["x"]} for i in range(len(texts))])
    before = index.search_many(QUERIES, k=5)
    index.save(tmp_path / "index")
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["search_dim"] == 8 and manifest["faiss"]["index_type"] == index_type
    for mmap in (False, True):
        loaded = MRLIndex.load(tmp_path / "index", mmap=mmap)  # the model comes from the manifest
        assert loaded.ids == ids and loaded.search_dim == 8 and loaded.shortlist_factor == 3
        assert loaded.vector_dtype == "float16" and loaded.index_type == index_type
        assert loaded.search_many(QUERIES, k=5) == before
    # a memory-mapped index takes new documents and deletions
    loaded.add(["Bamboo forests cover the mountains."], ids=["new"])
    loaded.delete(ids[:40])
    assert len(loaded) == 41 and loaded.search("Bamboo forests cover the mountains.", k=1)[0].id == "new"
    loaded.save(tmp_path / "again")
    assert MRLIndex.load(tmp_path / "again", ranker).ids == loaded.ids


def test_vector_index_round_trip_and_search_options(tmp_path):
    docs = clustered_vectors(500)
    index = vector_index(docs, search_dim=16, index_type="hnsw", shortlist_size=200)
    index.save(tmp_path / "v")
    assert json.loads((tmp_path / "v" / "manifest.json").read_text())["search"]["shortlist_size"] == 200
    assert MRLIndex.load(tmp_path / "v").shortlist_size == 200
    loaded = MRLIndex.load(tmp_path / "v", mmap=True, shortlist_factor=20, shortlist_size=None, hnsw_ef_search=300)
    assert loaded.encoder is None and loaded.shortlist_factor == 20 and loaded.hnsw_ef_search == 300
    assert loaded.shortlist_size is None and "shortlist_size=None" in repr(loaded)
    np.testing.assert_array_equal(loaded.search_rows(docs[:5], 3)[1], index.search_rows(docs[:5], 3)[1])
    # an index saved before shortlist_size existed loads without it
    manifest = json.loads((tmp_path / "v" / "manifest.json").read_text())
    del manifest["search"]["shortlist_size"]
    (tmp_path / "v" / "manifest.json").write_text(json.dumps(manifest))
    assert MRLIndex.load(tmp_path / "v").shortlist_size is None
    with pytest.raises(TypeError, match="nprob"):
        MRLIndex.load(tmp_path / "v", nprob=3)
    with pytest.raises(ValueError, match="no model to encode"):
        loaded.search("a text query")


# ---- errors -------------------------------------------------------------------------------------


def test_mismatched_dims_name_both(ranker, bi_encoder, tmp_path):
    index = MRLIndex(ranker, search_dim=8)
    index.add(TEXTS)
    index.save(tmp_path / "index")
    with pytest.raises(ValueError, match=r"gives 16-dim vectors but the index .* holds 32-dim ones"):
        MRLIndex.load(tmp_path / "index", Reranker(bi_encoder, truncate_dim=16))
    with pytest.raises(ValueError, match=r"embeddings must have 32 dimensions, got an array of shape \(2, 16\)"):
        index.add(["a", "b"], embeddings=np.ones((2, 16)))
    with pytest.raises(ValueError, match=r"dim=64 differs from the 32 dims"):
        MRLIndex(ranker, dim=64)
    with pytest.raises(ValueError, match=r"search_dim must be an integer from 1 to the vectors' dimension 32, got 64"):
        MRLIndex(ranker, search_dim=64)


def test_missing_or_corrupt_folders(tmp_path):
    with pytest.raises(IndexNotFoundError, match="does not exist"):
        MRLIndex.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorruptIndexError, match="no manifest.json"):
        MRLIndex.load(tmp_path / "empty")
    folder = vector_index(clustered_vectors(100)).save(tmp_path / "index")
    vectors = (folder / "vectors.npy").read_bytes()
    (folder / "vectors.npy").write_bytes(vectors[:-4])
    with pytest.raises(CorruptIndexError, match="vectors.npy is corrupted"):
        MRLIndex.load(folder)
    (folder / "vectors.npy").write_bytes(vectors[:-4] + b"\0\0\0\0")
    with pytest.raises(CorruptIndexError, match="SHA-256"):
        MRLIndex.load(folder)
    (folder / "faiss.index").unlink()
    with pytest.raises(CorruptIndexError, match="faiss.index is missing"):
        MRLIndex.load(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptIndexError, match="not valid JSON"):
        MRLIndex.load(folder)


def test_documents_file_with_a_repeated_id_is_refused(tmp_path):
    """Past the size check (same length) and with checksums off, the records themselves are checked."""
    folder = vector_index(clustered_vectors(20)).save(tmp_path / "index")
    docs = folder / "documents.jsonl"
    docs.write_text(docs.read_text().replace('"id": "1",', '"id": "0",', 1))
    with pytest.raises(CorruptIndexError, match="is inconsistent: documents.jsonl repeats an id"):
        MRLIndex.load(folder, verify=False)


def test_bad_arguments(ranker, bert_cross_encoder):
    with pytest.raises(ValueError, match="index_type must be one of"):
        MRLIndex(dim=8, index_type="lsh")
    with pytest.raises(ValueError, match="shortlist_factor must be a positive integer, got 0"):
        MRLIndex(dim=8, shortlist_factor=0)
    for bad in (0, -5, 2.5, True, "100"):
        with pytest.raises(ValueError, match=f"shortlist_size must be a positive integer, got {bad!r}"):
            MRLIndex(dim=8, shortlist_size=bad)
    with pytest.raises(ValueError, match="shortlist_size must be a positive integer, got 0"):
        vector_index(clustered_vectors(20, dim=8)).search_rows(np.ones((1, 8)), 3, shortlist_size=0)
    with pytest.raises(ValueError, match="needs dim="):
        MRLIndex()
    with pytest.raises(TypeError, match="must be an embedding model .* got a 'cross-encoder' model"):
        MRLIndex(Reranker(bert_cross_encoder))
    with pytest.raises(TypeError, match="model must be a path, a hub id or a loaded embedding model, got int"):
        MRLIndex(3)
    index = MRLIndex(ranker, search_dim=8)
    with pytest.raises(TypeError, match=r"metadatas\[0\] must be JSON-serializable"):
        index.add(["a"], metadatas=[{"when": object()}])
    with pytest.raises(ValueError, match=r"ids\[1\] = 'x' is repeated"):
        index.add(["a", "b"], ids=["x", "x"])
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        index.add(["a", None])
    with pytest.raises(ValueError, match="nlist=50 needs at least 50 documents"):
        MRLIndex(dim=8, index_type="ivf", nlist=50).add(["a"] * 10, embeddings=np.ones((10, 8)))
    assert len(index) == 0


# ---- helpers --------------------------------------------------------------------------------------


def test_vector_text_round_trip_and_errors():
    v = np.linspace(-1, 1, 24).astype(np.float32)
    np.testing.assert_array_equal(vector_from_text(vector_to_text(v, "float32"), 24), v)
    np.testing.assert_allclose(vector_from_text(vector_to_text(v), 24), v, atol=1e-3)
    with pytest.raises(ValueError, match="doc 7: the stored vector has 24 dimensions, the model gives 32"):
        vector_from_text(vector_to_text(v), 32, "doc 7")
    with pytest.raises(ValueError, match="unknown vector dtype 'int8'"):
        vector_from_text("int8:AAAA", 24)
    order, scores = rescore(np.array([1.0, 0.0]), np.array([[0.1, 1], [0.9, 0], [0.9, 0.1]]), 2)
    assert order.tolist() == [1, 2] and scores.tolist() == [0.9, 0.9]


def test_rescore_stored_orders_by_full_vector_and_drops_below_threshold():
    """The vector-store retrievers' second stage: the best k by the full vectors in the metadata."""
    stored = [
        {"v": vector_to_text(np.array(v, dtype=np.float32), "float32"), "n": i}
        for i, v in enumerate([[0.1, 1.0], [0.9, 0.0], [0.5, 0.5]])
    ]
    names = [f"doc {i}" for i in range(3)]
    query = np.array([1.0, 0.0])
    kwargs = {"vector_key": "v", "dim": 2, "how_to_add": "add them with vectors"}
    assert rescore_stored(query, stored, names, 2, **kwargs) == [(1, pytest.approx(0.9)), (2, pytest.approx(0.5))]
    assert rescore_stored(query, stored, names, 3, score_threshold=0.3, **kwargs) == [
        (1, pytest.approx(0.9)),
        (2, pytest.approx(0.5)),
    ]
    assert rescore_stored(query, [], [], 3, **kwargs) == []
    with pytest.raises(
        ValueError, match=r"doc 1 from the vector store has no full vector in metadata\['v'\]: add them"
    ):
        rescore_stored(query, [stored[0], {"n": 1}], names[:2], 2, **kwargs)


def load_benchmark(name: str):
    path = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_benchmark_ir_metrics_match_hand_computed_values():
    bench = load_benchmark("mrl_quality_vs_dim")
    ranked = np.array([[3, 1, 2], [0, 5, 6], [7, 8, 9]])
    relevant = np.array([1, 0, 4])
    assert bench.recall_at_k(ranked, relevant, k=3) == pytest.approx(2 / 3)
    assert bench.recall_at_k(ranked, relevant, k=1) == pytest.approx(1 / 3)
    # ranks 2 and 1 and a miss: (1/log2(3) + 1 + 0) / 3
    assert bench.ndcg_at_k(ranked, relevant, k=3) == pytest.approx((1 / np.log2(3) + 1) / 3)


@pytest.mark.slow
def test_funnel_agrees_with_exhaustive_search_on_squad(minilm_path, shared_data):
    """All 913 SQuAD paragraphs and 1,000 questions; all-MiniLM-L6-v2 is not MRL-trained: a third of its dims."""
    squad = json.loads((shared_data / "squad" / "squad_v1.1_dev_part1.json").read_text())["data"]
    paragraphs = [p["context"] for a in squad for p in a["paragraphs"]]
    questions = [qa["question"] for a in squad for p in a["paragraphs"] for qa in p["qas"]][::5][:1000]
    index = MRLIndex(minilm_path, search_dim=128, model_kwargs={"batch_size": 64})
    docs = index.encode_documents(paragraphs)
    index.add(paragraphs, embeddings=docs)
    queries = index.encoder.encode_queries(questions)
    _, rows = index.search_rows(queries, 10)
    _, want = exhaustive(queries, docs, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, want)]) >= 0.99
