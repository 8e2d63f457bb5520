"""The Qdrant engine under the Index API, on the real engine: Qdrant Edge in-process, and qdrant-client's
local mode for the client path (a server takes the same calls). Exact search equals the FAISS engine's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qdrant_edge")
pytest.importorskip("faiss")

from kit import colbert as tc
from kit.paths import REPO
from kit.texts import QUERIES, TEXTS

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import (
    ColBERTIndex,
    CorruptIndexError,
    IndexHit,
    IndexNotFoundError,
    MRLIndex,
    QdrantColBERTIndex,
    QdrantMRLIndex,
    write_metadata,
)

DIM = 64
IDS = [str(i) for i in range(len(TEXTS))]


def clustered(n: int, dim: int = DIM, seed: int = 0, centres_seed: int = 7) -> np.ndarray:
    """Unit vectors around 20 centres, variance falling along the dims (as a Matryoshka model's do)."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(np.arange(1, dim + 1))
    centres = np.random.default_rng(centres_seed).normal(size=(20, dim)) * scale
    x = centres[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, dim)) * scale
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def ranking(hits) -> list[str]:
    return [h.id for h in hits]


def assert_same_results(got, want, atol=1e-5):
    for g, w in zip(got, want, strict=True):
        assert ranking(g) == ranking(w)
        np.testing.assert_allclose([h.score for h in g], [h.score for h in w], atol=atol)


def assert_same_up_to_ties(got, want, atol=1e-5):
    """As assert_same_results, but documents of equal score may come in either order (engines break ties
    differently: bm25s by row, Qdrant by point id)."""
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose([h.score for h in g], [h.score for h in w], atol=atol)
        score_of = {h.id: h.score for h in w}
        for h in g:  # a document missing from the other list must tie with its last one
            assert abs(score_of.get(h.id, w[-1].score) - h.score) <= atol


def agreement(got, want) -> float:
    return float(np.mean([len(set(ranking(g)) & set(ranking(w))) / len(w) for g, w in zip(got, want, strict=True)]))


@pytest.fixture(scope="module")
def vectors():
    docs, queries = clustered(3000, seed=1), clustered(40, seed=2)
    texts, ids = [f"doc {i}" for i in range(len(docs))], [str(i) for i in range(len(docs))]
    metadatas = [{"group": i % 3, "lang": "en" if i % 2 else "fr"} for i in range(len(docs))]
    faiss_index = MRLIndex(dim=DIM, search_dim=DIM)
    faiss_index.add_vectors(texts, docs, ids=ids, metadatas=metadatas)
    return docs, queries, texts, ids, metadatas, faiss_index.search_by_vectors(queries, 10)


@pytest.fixture(scope="module")
def mrl_checkpoint(bi_encoder, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "bi-encoder-mrl"
    shutil.copytree(bi_encoder, folder)
    write_metadata(folder, "embedding", matryoshka_dims=[32, 16, 8], embedding_dim=32)
    return folder


@pytest.fixture(scope="module")
def colbert(tmp_path_factory):
    return Reranker(tc.build_tiny_colbert(tmp_path_factory.mktemp("engine-model") / "tiny-colbert"))


# ---- MRL ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("search_dim", [DIM, 16])
def test_mrl_exact_search_equals_the_faiss_engine(vectors, tmp_path, search_dim):
    docs, queries, texts, ids, metadatas, exact = vectors
    index = QdrantMRLIndex(dim=DIM, search_dim=search_dim, path=tmp_path / "q")
    index.add_vectors(texts, docs, ids=ids, metadatas=metadatas)
    assert len(index) == len(docs)
    assert_same_results(index.search_by_vectors(queries, 10, exhaustive=True), exact)
    index.save(tmp_path / "q")  # optimize: HNSW graph and int8 codes are built
    funnel = index.search_by_vectors(queries, 10)
    assert agreement(funnel, exact) >= 0.99
    # a funnel's result scores are the full vectors' (the prefix stage only picks candidates)
    for got, want in zip(funnel, exact):
        truth = {h.id: h.score for h in want}
        assert all(abs(h.score - truth[h.id]) < 1e-5 for h in got if h.id in truth)


def test_mrl_filters_deletes_replaces_and_reloads(vectors, tmp_path):
    docs, queries, texts, ids, metadatas, _ = vectors
    folder = tmp_path / "q"
    index = QdrantMRLIndex(dim=DIM, search_dim=16, path=folder)
    index.add_vectors(texts[:500], docs[:500], ids=ids[:500], metadatas=metadatas[:500])
    hits = index.search_by_vectors(queries[:3], 20, filter={"group": 1, "lang": ["en", "de"]})
    assert all(h.metadata["group"] == 1 and h.metadata["lang"] == "en" for row in hits for h in row)
    assert all(len(row) == 20 for row in hits)

    top = index.search_by_vectors(queries[:1], 1, exhaustive=True)[0][0]
    index.delete([top.id])
    assert top.id not in index and len(index) == 499
    assert top.id not in ranking(index.search_by_vectors(queries[:1], 10, exhaustive=True)[0])
    with pytest.raises(KeyError, match="nothing was deleted"):
        index.delete(["1", "no-such-id"])
    assert "1" in index

    index.add_vectors(["replaced"], docs[7:8], ids=["1"], metadatas=[{"new": True}])  # an id again: replaced
    assert len(index) == 499 and index.get("1").text == "replaced" and index.get("1").metadata == {"new": True}
    before = index.search_by_vectors(queries, 10, exhaustive=True)
    index.save(folder)
    index.close()
    reloaded = QdrantMRLIndex.load(folder)
    assert len(reloaded) == 499 and sorted(reloaded.ids) == sorted(set(ids[:500]) - {top.id})
    assert_same_results(reloaded.search_by_vectors(queries, 10, exhaustive=True), before)

    copy = reloaded.save(tmp_path / "copy")  # another folder: a copy of the shard
    reloaded.close()
    assert_same_results(QdrantMRLIndex.load(copy).search_by_vectors(queries, 10, exhaustive=True), before)


@pytest.mark.filterwarnings("ignore:Local mode performs exact")  # the client's local mode scans; a server searches
def test_mrl_on_the_qdrant_client_local_mode(vectors, tmp_path):
    qdrant_client = pytest.importorskip("qdrant_client")
    docs, queries, texts, ids, metadatas, exact = vectors
    client = qdrant_client.QdrantClient(":memory:")
    index = QdrantMRLIndex(dim=DIM, search_dim=16, client=client, collection="docs")
    index.add_vectors(texts[:800], docs[:800], ids=ids[:800], metadatas=metadatas[:800])
    want = MRLIndex(dim=DIM, search_dim=DIM)
    want.add_vectors(texts[:800], docs[:800], ids=ids[:800])
    assert_same_results(index.search_by_vectors(queries, 10, exhaustive=True), want.search_by_vectors(queries, 10))
    assert agreement(index.search_by_vectors(queries, 10), want.search_by_vectors(queries, 10)) >= 0.99

    index.save(tmp_path / "manifest-only")  # a server keeps the data: the folder holds the manifest alone
    assert sorted(p.name for p in (tmp_path / "manifest-only").iterdir()) == ["manifest.json"]
    with pytest.raises(ValueError, match="client=QdrantClient"):
        QdrantMRLIndex.load(tmp_path / "manifest-only")
    again = QdrantMRLIndex.load(tmp_path / "manifest-only", client=client)
    assert len(again) == 800 and again.location["collection"] == "docs"
    with pytest.raises(ValueError, match="already holds an index"):
        QdrantMRLIndex(dim=DIM, client=client, collection="docs")


def test_mrl_with_a_model_in_the_langchain_and_llama_index_retrievers(mrl_checkpoint, tmp_path):
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from llama_index.core.schema import TextNode

    from rag_retrieval_integrations.langchain import MRLRetriever, RagRetrievalReranker
    from rag_retrieval_integrations.llama_index import MRLRetriever as LlamaMRLRetriever

    metadatas = [{"n": i} for i in range(len(TEXTS))]
    retriever = MRLRetriever.from_texts(
        TEXTS, mrl_checkpoint, ids=IDS, metadatas=metadatas, engine="qdrant", path=tmp_path / "lc", k=3
    )
    assert isinstance(retriever.index, QdrantMRLIndex) and retriever.index.search_dim == 8
    faiss_retriever = MRLRetriever.from_texts(TEXTS, mrl_checkpoint, ids=IDS, k=3, shortlist_size=8)
    for query in QUERIES:
        got, want = retriever.invoke(query), faiss_retriever.invoke(query)
        assert [d.id for d in got] == [d.id for d in want]
    retriever.search_kwargs = {"filter": {"n": [0, 2, 4]}}
    assert {d.id for d in retriever.invoke("what is a panda?")} <= {"0", "2", "4"}
    retriever.search_kwargs = {}

    pipeline = ContextualCompressionRetriever(
        base_compressor=RagRetrievalReranker(model=mrl_checkpoint, top_n=2), base_retriever=retriever
    )
    assert len(pipeline.invoke("what is a panda?")) == 2
    retriever.save(tmp_path / "lc")
    retriever.index.close()
    assert isinstance(MRLRetriever.load(tmp_path / "lc").index, QdrantMRLIndex)  # the engine that wrote it reads it

    nodes = [TextNode(id_=i, text=t) for i, t in zip(IDS, TEXTS)]
    llama = LlamaMRLRetriever.from_nodes(nodes, mrl_checkpoint, engine="qdrant", similarity_top_k=2)
    assert [n.node.node_id for n in llama.retrieve("capital of france")][0] == "1"


def test_a_killed_build_resumes_where_it_stopped(mrl_checkpoint, tmp_path):
    folder = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import os, signal
        from rag_retrieval_integrations.core import QdrantMRLIndex
        texts = {TEXTS!r}
        def documents():
            for i, text in enumerate(texts):
                if i == 5:  # the third chunk never comes: killed like an OOM, no flush, no close
                    os.kill(os.getpid(), signal.SIGKILL)
                yield str(i), text, {{"n": i}}
        index = QdrantMRLIndex({str(mrl_checkpoint)!r}, path={str(folder)!r}, chunk_size=2)
        index.add_stream(documents())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == -9, result.stderr
    index = QdrantMRLIndex.load(folder)
    assert sorted(index.ids) == ["0", "1", "2", "3"]  # two chunks were written: the WAL kept them
    added = index.add_stream((str(i), t, {"n": i}) for i, t in enumerate(TEXTS))
    assert added == len(TEXTS) - 4  # the written ones are not encoded again
    fresh = QdrantMRLIndex(mrl_checkpoint)
    fresh.add(TEXTS, ids=IDS, metadatas=[{"n": i} for i in range(len(TEXTS))])
    assert_same_results(index.search_many(QUERIES, 5, exhaustive=True), fresh.search_many(QUERIES, 5, exhaustive=True))


# ---- ColBERT ------------------------------------------------------------------------------------


def test_colbert_exact_maxsim_equals_the_faiss_engine(colbert, tmp_path):
    faiss_index = ColBERTIndex(colbert, faiss_index="none")
    faiss_index.add(TEXTS, ids=IDS)
    index = QdrantColBERTIndex(colbert, path=tmp_path / "c", vector_dtype="float32")
    index.add(TEXTS, ids=IDS, metadatas=[{"n": i} for i in range(len(TEXTS))])
    want = faiss_index.search_many(QUERIES, 5)
    assert_same_results(index.search_many(QUERIES, 5, exhaustive=True), want)
    index.save(tmp_path / "c")
    index.close()
    reloaded = QdrantColBERTIndex.load(tmp_path / "c")
    assert reloaded.vector_dtype == "float32" and reloaded.quantization == "binary" and reloaded.on_disk
    assert_same_results(reloaded.search_many(QUERIES, 5), want)  # quantized pass, rescored exactly
    assert {h.id for h in reloaded.search("panda", k=8, filter={"n": [0, 4]})} == {"0", "4"}


@pytest.mark.parametrize("quantization, dim", [("binary", 128), ("int8", 16)])
def test_colbert_quantized_candidates_agree_with_exact_search(quantization, dim, tmp_path):
    """Clustered synthetic token vectors (no encoder time): the quantized pass keeps top-10 agreement;
    binary codes (the default) at ColBERT's usual 128 dims, int8 at 16."""
    colbert = Reranker(tc.build_tiny_colbert(tmp_path / "model", dim=dim))
    rng = np.random.default_rng(3)
    docs = [clustered(int(rng.integers(8, 24)), dim, seed=i) for i in range(600)]
    queries = [clustered(6, dim, seed=10_000 + i) for i in range(20)]
    ids = [str(i) for i in range(len(docs))]
    faiss_index = ColBERTIndex(colbert, faiss_index="none")
    faiss_index.add_vectors(ids, docs, ids=ids)
    exact = faiss_index.search_by_vectors(queries, 10)
    index = QdrantColBERTIndex(colbert, path=tmp_path / "c", quantization=quantization)
    index.add_vectors(ids, docs, ids=ids)
    assert_same_results(index.search_by_vectors(queries, 10, exhaustive=True), exact, atol=2e-3)  # float16 queries
    index.optimize()
    assert agreement(index.search_by_vectors(queries, 10), exact) >= 0.99


# ---- errors -------------------------------------------------------------------------------------


def test_errors_name_the_problem(tmp_path, colbert):
    with pytest.raises(IndexNotFoundError):
        QdrantMRLIndex.load(tmp_path / "missing")
    index = QdrantMRLIndex(dim=8, path=tmp_path / "q")
    with pytest.raises(ValueError, match="already holds an index"):
        QdrantMRLIndex(dim=8, path=tmp_path / "q")
    with pytest.raises(RuntimeError, match="open in another index"):
        QdrantMRLIndex.load(tmp_path / "q")
    with pytest.raises(CorruptIndexError, match="not the manifest"):
        QdrantColBERTIndex.load(tmp_path / "q", model=colbert)
    with pytest.raises(ValueError, match="filter"):
        index.search_by_vectors(np.ones((1, 8)), 3, filter={"score": 0.5})
    with pytest.raises(ValueError, match="quantization"):
        QdrantMRLIndex(dim=8, quantization="int4")
    with pytest.raises(ValueError, match="not both"):
        QdrantMRLIndex(dim=8, path=tmp_path / "x", url="http://127.0.0.1:6333")
    with pytest.raises(TypeError, match="unexpected option"):
        QdrantMRLIndex.load(tmp_path / "q", nprobe=3)
    with pytest.raises(TypeError, match=r"\(id, text\)"):
        index.add_stream(["just text"])


# ---- migration ----------------------------------------------------------------------------------


def test_a_faiss_engine_folder_converts_and_exact_search_stays_equal(mrl_checkpoint, colbert, tmp_path):
    from rag_retrieval_integrations.core.engines.qdrant.convert import convert_index
    from rag_retrieval_integrations.index_cli import main

    metadatas = [{"n": i} for i in range(len(TEXTS))]
    source = MRLIndex(mrl_checkpoint, index_type="hnsw")
    source.add(TEXTS, ids=IDS, metadatas=metadatas)
    source.save(tmp_path / "faiss-mrl")
    assert main(["convert", str(tmp_path / "faiss-mrl"), str(tmp_path / "qdrant-mrl"), "--quiet"]) == 0
    converted = QdrantMRLIndex.load(tmp_path / "qdrant-mrl")
    assert converted.search_dim == source.search_dim and converted.model.model_name_or_path
    assert converted.get("3") == source.get("3")
    assert_same_results(
        converted.search_many(QUERIES, 5, exhaustive=True), source.search_many(QUERIES, 5, shortlist_size=8)
    )
    assert main(["convert", str(tmp_path / "faiss-mrl"), str(tmp_path / "qdrant-mrl"), "--quiet"]) == 2  # exists

    faiss_colbert = ColBERTIndex(colbert, faiss_index="none")
    faiss_colbert.add(TEXTS, ids=IDS, metadatas=metadatas)
    moved = convert_index(faiss_colbert, tmp_path / "qdrant-colbert", vector_dtype="float32", show_progress_bar=False)
    assert isinstance(moved, QdrantColBERTIndex) and len(moved) == len(TEXTS)
    assert_same_results(moved.search_many(QUERIES, 5, exhaustive=True), faiss_colbert.search_many(QUERIES, 5))


def test_colbert_pooled_candidates_are_the_nearest_mean_vectors(colbert, tmp_path):
    """With pooled=True only the max_candidates documents nearest by mean vector are scored by MaxSim."""
    dim = colbert.embedding_dim
    docs = [clustered(12, dim, seed=i) for i in range(300)]
    queries = [clustered(6, dim, seed=5_000 + i) for i in range(8)]
    ids = [str(i) for i in range(len(docs))]
    index = QdrantColBERTIndex(colbert, path=tmp_path / "c", pooled=True, max_candidates=5, quantization=None)
    index.add_vectors(ids, docs, ids=ids)
    means = np.stack([d.mean(axis=0) / np.linalg.norm(d.mean(axis=0)) for d in docs])
    for query, hits in zip(queries, index.search_by_vectors(queries, 3)):
        nearest = {str(i) for i in np.argsort(-(means @ query.mean(axis=0)))[:5]}
        assert {h.id for h in hits} <= nearest
        maxsim = {h.id: float((query @ docs[int(h.id)].T).max(axis=1).sum()) for h in hits}
        assert [h.id for h in hits] == sorted(maxsim, key=maxsim.get, reverse=True)
        np.testing.assert_allclose([h.score for h in hits], [maxsim[h.id] for h in hits], atol=2e-3)


# ---- hybrid -------------------------------------------------------------------------------------

HYBRID_TEXTS = TEXTS + [
    "Giant pandas live in the mountains of central China and eat bamboo.",
    "The capital of Italy is Rome, and Paris is the capital of France.",
    "Bears such as the panda and the polar bear are large mammals.",
    "Hamlet is a tragedy by William Shakespeare set in Denmark.",
]
HYBRID_QUERIES = [*QUERIES, "giant panda bamboo", "capital city of France and Italy", "zzz unknownword"]


def test_hybrid_parts_equal_bm25s_and_exact_dense_search_and_fuse_by_rrf(mrl_checkpoint, tmp_path):
    pytest.importorskip("bm25s")
    from rag_retrieval_integrations.core import BM25Index, QdrantHybridIndex
    from rag_retrieval_integrations.core.indexes.fusion import fuse

    ids = [str(i) for i in range(len(HYBRID_TEXTS))]
    metadatas = [{"n": i % 2} for i in range(len(HYBRID_TEXTS))]
    index = QdrantHybridIndex(mrl_checkpoint, path=tmp_path / "h", candidates=len(HYBRID_TEXTS))
    index.add(HYBRID_TEXTS, ids=ids, metadatas=metadatas)  # one add: avg_len is this corpus's average
    bm25 = BM25Index()  # the same analyzer, k1 and b, bm25s's lucene BM25
    bm25.add(HYBRID_TEXTS, ids=ids)
    dense = MRLIndex(mrl_checkpoint, search_dim=32)
    dense.add(HYBRID_TEXTS, ids=ids)

    n = len(HYBRID_TEXTS)
    lexical = index.search_many(HYBRID_QUERIES, n, part="bm25")
    assert lexical[-1] == []  # no query term in any document
    assert_same_up_to_ties(lexical, bm25.search_many(HYBRID_QUERIES, n), atol=1e-4)
    assert_same_results(index.search_many(HYBRID_QUERIES, n, part="dense"), dense.search_many(HYBRID_QUERIES, n))

    fused = index.search_many(HYBRID_QUERIES[:-1], 5)
    for got, lex, sem in zip(fused, lexical, dense.search_many(HYBRID_QUERIES[:-1], n)):
        want = fuse([[(h.id, h.score) for h in lex], [(h.id, h.score) for h in sem]], fusion="rrf", rrf_k=60)[:5]
        assert_same_up_to_ties([got], [[IndexHit(i, "", {}, s) for i, s in want]], atol=1e-6)
    assert all(h.metadata["n"] == 1 for h in index.search("panda", k=10, filter={"n": 1}))

    index.save(tmp_path / "h")
    index.close()
    reloaded = QdrantHybridIndex.load(tmp_path / "h", fusion="dbsf")
    assert reloaded.avg_len == pytest.approx(index.avg_len) and reloaded.fusion == "dbsf"
    assert len(reloaded.search("panda bamboo", k=3)) == 3


@pytest.mark.filterwarnings("ignore:Local mode performs exact")
def test_hybrid_on_the_client_local_mode_equals_the_embedded_engine(mrl_checkpoint, tmp_path):
    pytest.importorskip("bm25s")
    qdrant_client = pytest.importorskip("qdrant_client")
    from rag_retrieval_integrations.core import QdrantHybridIndex

    ids = [str(i) for i in range(len(HYBRID_TEXTS))]
    edge = QdrantHybridIndex(mrl_checkpoint, path=tmp_path / "h")
    remote = QdrantHybridIndex(mrl_checkpoint, client=qdrant_client.QdrantClient(":memory:"), collection="hybrid")
    for index in (edge, remote):
        index.add(HYBRID_TEXTS, ids=ids)
    n = len(HYBRID_TEXTS)
    for part in ("bm25", "dense"):
        assert_same_up_to_ties(
            remote.search_many(HYBRID_QUERIES, n, part=part), edge.search_many(HYBRID_QUERIES, n, part=part), atol=1e-4
        )
    # the server's RRF is the same formula (engines break BM25 ties differently, so each is checked on its own parts)
    from rag_retrieval_integrations.core.indexes.fusion import fuse

    for index in (edge, remote):
        parts = [index.search_many(HYBRID_QUERIES[:-1], n, part=p) for p in ("bm25", "dense")]
        for got, lex, sem in zip(index.search_many(HYBRID_QUERIES[:-1], 5), *parts):
            want = fuse([[(h.id, h.score) for h in lex], [(h.id, h.score) for h in sem]], rrf_k=60)[:5]
            np.testing.assert_allclose([h.score for h in got], [s for _, s in want], atol=1e-6)


def test_hybrid_retrievers_on_the_qdrant_engine(mrl_checkpoint, tmp_path):
    pytest.importorskip("bm25s")
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from llama_index.core.schema import TextNode

    from rag_retrieval_integrations.core import QdrantHybridIndex
    from rag_retrieval_integrations.langchain import HybridRetriever, RagRetrievalReranker
    from rag_retrieval_integrations.llama_index import HybridRetriever as LlamaHybridRetriever

    retriever = HybridRetriever.from_texts(
        HYBRID_TEXTS, mrl_checkpoint, engine="qdrant", path=tmp_path / "lc", k=4, candidates=20
    )
    assert isinstance(retriever.index, QdrantHybridIndex)
    pipeline = ContextualCompressionRetriever(
        base_compressor=RagRetrievalReranker(model=mrl_checkpoint, top_n=2), base_retriever=retriever
    )
    assert len(pipeline.invoke("giant panda bamboo")) == 2
    retriever.save(tmp_path / "lc")
    retriever.index.close()
    assert isinstance(HybridRetriever.load(tmp_path / "lc").index, QdrantHybridIndex)

    nodes = [TextNode(id_=str(i), text=t) for i, t in enumerate(HYBRID_TEXTS)]
    llama = LlamaHybridRetriever.from_nodes(nodes, mrl_checkpoint, engine="qdrant", similarity_top_k=2)
    assert [n.node.node_id for n in llama.retrieve("capital of france")][0] in {"1", "9"}
