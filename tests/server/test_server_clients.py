"""``RemoteReranker`` against a real server: the ``Reranker`` API, and the LangChain and LlamaIndex
wrappers working through it unchanged, sync and async."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("langchain_classic")
pytest.importorskip("llama_index.core")

from kit.serving import TIMEOUT, serve
from kit.texts import QUERIES, QUERY, TEXTS
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import TextNode

from rag_retrieval_integrations import RemoteReranker, RemoteRerankerError, Reranker
from rag_retrieval_integrations.langchain import RagRetrievalEmbeddings, RagRetrievalReranker
from rag_retrieval_integrations.llama_index import RagRetrievalEmbedding, RagRetrievalRerank

KEY = "client-key"


@pytest.fixture(scope="module")
def model(bert_cross_encoder):
    return Reranker(bert_cross_encoder)


@pytest.fixture(scope="module")
def url(model):
    with serve(model, served_model_name="tiny", api_key=KEY, max_documents=6) as u:
        yield u


@pytest.fixture(scope="module")
def remote(url):
    client = RemoteReranker(url, api_key=KEY, model="tiny", timeout=TIMEOUT, documents_per_request=6)
    yield client
    client.close()


def pairs_of(ranked) -> list[tuple[int, float]]:
    return [(r.index, r.score) for r in ranked]


def test_rank_equals_the_local_model_exactly(model, remote):
    """Six documents: one request, scored in the same batch as locally, so the same bits."""
    for normalize in (False, True):
        assert pairs_of(remote.rank(QUERY, TEXTS[:6], normalize=normalize, top_k=4)) == pairs_of(
            model.rank(QUERY, TEXTS[:6], normalize=normalize, top_k=4)
        )


def test_rank_many_and_compute_score_equal_the_local_model(model, remote):
    """Eight documents against a server taking six per request: each query goes as two requests."""
    docs = [TEXTS[i:] + TEXTS[:i] for i in range(len(QUERIES))]
    for got, want in zip(
        remote.rank_many(QUERIES, docs, normalize=True), model.rank_many(QUERIES, docs, normalize=True)
    ):
        assert [r.index for r in got] == [r.index for r in want]
        assert got.scores == pytest.approx(want.scores, abs=1e-6)  # batched differently: float32 rounding
    pairs = [(q, t) for q in QUERIES for t in TEXTS[:3]] + [(QUERY, TEXTS[0])]  # and a duplicate
    assert remote.compute_score(pairs) == pytest.approx(model.compute_score(pairs), abs=1e-6)
    assert remote.rank(QUERY, []).scores == [] and remote.compute_score([]) == []


def test_async_methods_equal_the_sync_ones(model, remote):
    docs = [TEXTS] * len(QUERIES)

    async def run():
        return await asyncio.gather(
            remote.arank(QUERY, TEXTS, top_k=3, normalize=True),
            remote.arank_many(QUERIES, docs),
            remote.acompute_score([(QUERY, t) for t in TEXTS], normalize=True),
        )

    ranked, many, scores = asyncio.run(run())
    assert pairs_of(ranked) == pairs_of(model.rank(QUERY, TEXTS, top_k=3, normalize=True))
    for got, want in zip(many, model.rank_many(QUERIES, docs)):
        assert [r.index for r in got] == [r.index for r in want]
        assert got.scores == pytest.approx(want.scores, abs=1e-6)
    assert scores == pytest.approx(model.compute_score([(QUERY, t) for t in TEXTS], normalize=True), abs=1e-6)


def test_sync_calls_work_inside_a_running_event_loop(model, remote):
    async def inside():
        return remote.rank(QUERY, TEXTS[:6])  # a notebook cell: sync code with a loop running

    assert pairs_of(asyncio.run(inside())) == pairs_of(model.rank(QUERY, TEXTS[:6]))


def test_errors_name_the_server_and_what_it_said(url, model):
    with pytest.raises(RemoteRerankerError, match="401") as err:
        RemoteReranker(url, api_key="wrong", timeout=TIMEOUT).rank(QUERY, TEXTS)
    assert err.value.status == 401
    with pytest.raises(RemoteRerankerError, match="is not served here"):
        RemoteReranker(url, api_key=KEY, model="other", timeout=TIMEOUT).rank(QUERY, TEXTS)
    with pytest.raises(RemoteRerankerError, match="413"):
        RemoteReranker(url, api_key=KEY, timeout=TIMEOUT, documents_per_request=7).rank(QUERY, TEXTS)
    with pytest.raises(RemoteRerankerError, match="cannot reach"):
        RemoteReranker("http://127.0.0.1:9", timeout=2).rank(QUERY, TEXTS)
    with pytest.raises(ValueError, match="url"):
        RemoteReranker("localhost:8000")
    with pytest.raises(TypeError, match="cutoff_layers"):
        asyncio.run(RemoteReranker(url).arank(QUERY, TEXTS, cutoff_layers=[2]))


# ---- the framework wrappers, through the server -------------------------------------------------


@pytest.fixture(scope="module")
def vector_store(bi_encoder):
    docs = [Document(t, id=f"doc-{i}") for i, t in enumerate(TEXTS)]
    return InMemoryVectorStore.from_documents(docs, RagRetrievalEmbeddings(model=bi_encoder))


def test_langchain_compression_retriever_through_the_server(model, remote, vector_store, monkeypatch):
    base = vector_store.as_retriever(search_kwargs={"k": 6})
    retriever = lambda m: ContextualCompressionRetriever(
        base_compressor=RagRetrievalReranker(model=m, top_n=3, normalize=True), base_retriever=base
    )
    want = [(d.id, d.metadata["relevance_score"]) for d in retriever(model).invoke(QUERY)]
    assert [(d.id, d.metadata["relevance_score"]) for d in retriever(remote).invoke(QUERY)] == want

    got = asyncio.run(retriever(remote).ainvoke(QUERY))
    assert [(d.id, d.metadata["relevance_score"]) for d in got] == want

    def no_threads(*args, **kwargs):
        raise AssertionError("the async path of a RemoteReranker must not use a worker thread")

    monkeypatch.setattr(asyncio, "to_thread", no_threads)  # the remote async path is native async HTTP
    compressor = RagRetrievalReranker(model=remote, top_n=3, normalize=True)
    got = asyncio.run(compressor.acompress_documents(base.invoke(QUERY), QUERY))
    assert [(d.id, d.metadata["relevance_score"]) for d in got] == want


def test_llama_index_query_engine_through_the_server(model, remote, bi_encoder):
    nodes = [TextNode(id_=f"node-{i}", text=t) for i, t in enumerate(TEXTS)]
    index = VectorStoreIndex(nodes, embed_model=RagRetrievalEmbedding(model=bi_encoder))
    engine = lambda m: index.as_query_engine(
        similarity_top_k=6, node_postprocessors=[RagRetrievalRerank(model=m, top_n=3)], llm=MockLLM()
    )
    want = [(n.node.node_id, n.score) for n in engine(model).query(QUERY).source_nodes]
    assert [(n.node.node_id, n.score) for n in engine(remote).query(QUERY).source_nodes] == want
    got = asyncio.run(engine(remote).aquery(QUERY)).source_nodes
    assert [(n.node.node_id, n.score) for n in got] == want
