"""ColBERTRetriever for LangChain and LlamaIndex inside real framework pipelines (what both retrievers
return, add, delete and save: test_index_retrievers.py)."""

from __future__ import annotations

import asyncio

import pytest
from kit import colbert as tc
from kit.checkpoints import CORPUS

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import ColBERTIndex

TEXTS = CORPUS[:23]
QUERY = "what is a panda?"


@pytest.fixture(scope="module")
def colbert(tmp_path_factory):
    return Reranker(tc.build_tiny_colbert(tmp_path_factory.mktemp("retriever-model") / "tiny-colbert"))


# ---- LangChain ------------------------------------------------------------------------------


def test_langchain_retriever_in_contextual_compression_with_our_reranker(colbert, bi_encoder):
    pytest.importorskip("langchain_classic")
    from langchain_classic.retrievers import ContextualCompressionRetriever

    from rag_retrieval_integrations.langchain import ColBERTRetriever, RagRetrievalReranker

    retriever = ColBERTRetriever.from_texts(TEXTS, colbert, metadatas=[{"n": i} for i in range(len(TEXTS))], k=6)
    reranker = RagRetrievalReranker(model=bi_encoder, top_n=2)
    pipeline = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=retriever)
    first_stage = retriever.invoke(QUERY)
    final = pipeline.invoke(QUERY)
    reranked = reranker.reranker.rank(QUERY, [d.page_content for d in first_stage], top_k=2)
    assert [d.page_content for d in final] == reranked.texts
    assert [d.metadata["relevance_score"] for d in final] == pytest.approx(reranked.scores)
    assert [d.metadata["n"] for d in final] == [first_stage[i].metadata["n"] for i in reranked.indices]
    assert [d.page_content for d in asyncio.run(pipeline.ainvoke(QUERY))] == reranked.texts


# ---- LlamaIndex -----------------------------------------------------------------------------


def test_llama_index_query_engine_with_mock_llm(colbert):
    pytest.importorskip("llama_index.core")
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.schema import MetadataMode, TextNode

    from rag_retrieval_integrations.llama_index import ColBERTRetriever, RagRetrievalRerank

    index = ColBERTIndex(colbert)
    retriever = ColBERTRetriever(index, similarity_top_k=5)
    retriever.add_nodes([TextNode(id_=f"n{i}", text=t, metadata={"n": i}) for i, t in enumerate(TEXTS)])
    rerank = RagRetrievalRerank(model=colbert, top_n=2)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(max_tokens=8), node_postprocessors=[rerank])
    response = engine.query(QUERY)
    retrieved = retriever.retrieve(QUERY)
    # the postprocessor scores what LlamaIndex embeds: the text with its metadata
    reranked = colbert.rank(QUERY, [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in retrieved], top_k=2)
    assert [n.node.node_id for n in response.source_nodes] == [retrieved[i].node.node_id for i in reranked.indices]
    assert [n.score for n in response.source_nodes] == pytest.approx(reranked.scores)
    assert isinstance(response.response, str) and response.response
    assert len(asyncio.run(engine.aquery(QUERY)).source_nodes) == 2
