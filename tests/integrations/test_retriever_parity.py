"""Every framework retriever returns what the core index returns for the same query: the same ids, in
the same order, with the same scores, in LangChain and in LlamaIndex, sync and async.

The MRL cases use a shortlist where ``shortlist_size`` matters: ``k * shortlist_factor`` candidates
alone give other results (checked below), so a retriever that ignores ``shortlist_size`` fails."""

from __future__ import annotations

import asyncio

import pytest
from kit import colbert as tc

pytest.importorskip("faiss")
pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from kit.texts import QUERIES, TEXTS
from langchain_core.documents import Document
from llama_index.core.schema import TextNode

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import ColBERTIndex, MRLIndex
from rag_retrieval_integrations.langchain import ColBERTRetriever as LangChainColBERT
from rag_retrieval_integrations.langchain import MRLRetriever as LangChainMRL
from rag_retrieval_integrations.langchain import MRLVectorStoreRetriever as LangChainFunnel
from rag_retrieval_integrations.llama_index import ColBERTRetriever as LlamaColBERT
from rag_retrieval_integrations.llama_index import MRLRetriever as LlamaMRL
from rag_retrieval_integrations.llama_index import MRLVectorStoreRetriever as LlamaFunnel

IDS = [f"doc-{i}" for i in range(len(TEXTS))]
K = 2
# a 4-dim shortlist of the tiny bi-encoder's 32 dims, one candidate per result, at least every document:
# the funnel is exhaustive search only through shortlist_size
MRL_SETTINGS = {"search_dim": 4, "shortlist_factor": 1, "shortlist_size": len(TEXTS), "vector_dtype": "float32"}


@pytest.fixture(scope="module")
def embedder(bi_encoder):
    return Reranker(bi_encoder)


@pytest.fixture(scope="module")
def colbert(tmp_path_factory):
    return Reranker(tc.build_tiny_colbert(tmp_path_factory.mktemp("parity") / "tiny-colbert"))


def core_results(index, query: str) -> list[tuple[str, float]]:
    return [(hit.id, hit.score) for hit in index.search(query, k=K)]


def langchain_retriever(kind: str, embedder, colbert):
    docs = [Document(text, id=doc_id) for doc_id, text in zip(IDS, TEXTS)]
    if kind == "colbert":
        return LangChainColBERT.from_documents(docs, colbert, k=K)
    if kind == "mrl":
        return LangChainMRL.from_documents(docs, embedder, k=K, **MRL_SETTINGS)
    return LangChainFunnel.from_documents(docs, embedder, ids=IDS, k=K, **MRL_SETTINGS)


def llama_retriever(kind: str, embedder, colbert):
    nodes = [TextNode(id_=doc_id, text=text) for doc_id, text in zip(IDS, TEXTS)]
    if kind == "colbert":
        return LlamaColBERT.from_nodes(nodes, colbert, similarity_top_k=K)
    if kind == "mrl":
        return LlamaMRL.from_nodes(nodes, embedder, similarity_top_k=K, **MRL_SETTINGS)
    settings = {k: v for k, v in MRL_SETTINGS.items() if k != "search_dim"}
    return LlamaFunnel.from_nodes(nodes, embedder, search_dim=4, similarity_top_k=K, **settings)


def retrieved(framework: str, retriever, query: str, run_async: bool) -> list[tuple[str, float]]:
    if framework == "langchain":
        docs = asyncio.run(retriever.ainvoke(query)) if run_async else retriever.invoke(query)
        return [(doc.id, doc.metadata["relevance_score"]) for doc in docs]
    nodes = asyncio.run(retriever.aretrieve(query)) if run_async else retriever.retrieve(query)
    return [(n.node.node_id, n.score) for n in nodes]


@pytest.mark.parametrize("kind", ["colbert", "mrl", "mrl_vector_store"])
@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_framework_retrievers_return_what_the_core_index_returns(framework, kind, embedder, colbert):
    if kind == "colbert":
        index = ColBERTIndex(colbert)
    else:
        index = MRLIndex(embedder, **MRL_SETTINGS)
    index.add(TEXTS, ids=IDS)
    build = langchain_retriever if framework == "langchain" else llama_retriever
    retriever = build(kind, embedder, colbert)
    for query in QUERIES:
        want = core_results(index, query)
        for run_async in (False, True):
            got = retrieved(framework, retriever, query, run_async)
            assert [i for i, _ in got] == [i for i, _ in want], (query, run_async)
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5), (query, run_async)


def test_the_mrl_cases_depend_on_shortlist_size(embedder):
    """Without shortlist_size (k * shortlist_factor = 2 candidates) the core index answers otherwise,
    so the parity above holds only for retrievers that honour shortlist_size."""
    with_size = MRLIndex(embedder, **MRL_SETTINGS)
    without = MRLIndex(embedder, **{**MRL_SETTINGS, "shortlist_size": None})
    for index in (with_size, without):
        index.add(TEXTS, ids=IDS)
    assert any(core_results(with_size, q) != core_results(without, q) for q in QUERIES)
