"""ColBERTRetriever for LangChain and LlamaIndex, inside real framework pipelines."""

from __future__ import annotations

import asyncio

import pytest
import tiny_colbert as tc
from tiny_checkpoints import CORPUS

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import ColBERTIndex

TEXTS = CORPUS[:23]
QUERY = "what is a panda?"


@pytest.fixture(scope="module")
def colbert(tmp_path_factory):
    return Reranker(tc.build_tiny_colbert(tmp_path_factory.mktemp("retriever-model") / "tiny-colbert"))


@pytest.fixture(scope="module")
def expected(colbert):
    """The model's own ranking of the texts: what every retriever must return (index scores are float16)."""
    return colbert.rank(QUERY, TEXTS)


# ---- LangChain ------------------------------------------------------------------------------


def test_langchain_retriever_sync_async_and_changes(colbert, expected, tmp_path):
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from rag_retrieval_integrations.langchain import ColBERTRetriever

    docs = [Document(page_content=t, metadata={"n": i}, id=f"d{i}") for i, t in enumerate(TEXTS)]
    retriever = ColBERTRetriever.from_documents(docs, colbert, k=3)
    found = retriever.invoke(QUERY)
    assert [d.id for d in found] == [f"d{i}" for i in expected.indices[:3]]
    assert [d.metadata["n"] for d in found] == expected.indices[:3]
    assert [d.metadata["relevance_score"] for d in found] == pytest.approx(expected.scores[:3], abs=1e-2)
    assert asyncio.run(retriever.ainvoke(QUERY)) == found

    new = Document(page_content="Red pandas live in the Himalayas.", metadata={"n": -1})
    ids = retriever.add_documents([new])
    everything = ColBERTRetriever(index=retriever.index, k=30).invoke(QUERY)
    added = next(d for d in everything if d.id == ids[0])
    assert added.page_content == new.page_content and added.metadata["n"] == -1
    assert added.metadata["relevance_score"] == pytest.approx(
        colbert.compute_score((QUERY, new.page_content))[0], abs=1e-2
    )
    retriever.delete(ids)
    assert len(ColBERTRetriever(index=retriever.index, k=30).invoke(QUERY)) == len(TEXTS)
    assert retriever.invoke(QUERY) == found

    retriever.save(tmp_path / "lc-index")
    reloaded = ColBERTRetriever.load(tmp_path / "lc-index", colbert, k=3)
    assert reloaded.invoke(QUERY) == found
    with pytest.raises(ValueError):
        ColBERTRetriever(index=retriever.index, k=0)


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


def test_llama_index_retriever_returns_scored_nodes(colbert, expected, tmp_path):
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode

    from rag_retrieval_integrations.llama_index import ColBERTRetriever

    nodes = [TextNode(id_=f"n{i}", text=t, metadata={"n": i}) for i, t in enumerate(TEXTS)]
    retriever = ColBERTRetriever.from_nodes(nodes, colbert, similarity_top_k=3)
    found = retriever.retrieve(QUERY)
    assert all(isinstance(n, NodeWithScore) for n in found)
    assert [n.node.node_id for n in found] == [f"n{i}" for i in expected.indices[:3]]
    assert [n.node.metadata["n"] for n in found] == expected.indices[:3]
    assert [n.score for n in found] == pytest.approx(expected.scores[:3], abs=1e-2)
    assert [n.node.get_content() for n in found] == expected.texts[:3]
    again = asyncio.run(retriever.aretrieve(QUERY))
    assert [(n.node.node_id, n.score) for n in again] == [(n.node.node_id, n.score) for n in found]

    retriever.save(tmp_path / "li-index")
    reloaded = ColBERTRetriever.load(tmp_path / "li-index", similarity_top_k=3)
    assert [(n.node.node_id, n.score) for n in reloaded.retrieve(QUERY)] == [(n.node.node_id, n.score) for n in found]
    reloaded.delete([found[0].node.node_id])
    assert found[0].node.node_id not in [n.node.node_id for n in reloaded.retrieve(QUERY)]
    with pytest.raises(TypeError, match="index must be a ColBERTIndex"):
        ColBERTRetriever("not an index")


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


def test_llama_index_retriever_returns_the_indexed_nodes_whole(colbert):
    """Relationships and metadata exclusions survive indexing (they used to come back as a bare TextNode)."""
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    from rag_retrieval_integrations.llama_index import ColBERTRetriever

    node = TextNode(id_="n0", text=TEXTS[0], metadata={"src": "a", "secret": 1}, excluded_llm_metadata_keys=["secret"])
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="doc-1")
    retriever = ColBERTRetriever(ColBERTIndex(colbert), similarity_top_k=1)
    retriever.add_nodes([node])
    back = retriever.retrieve(QUERY)[0].node
    assert back.node_id == "n0" and back.text == TEXTS[0] and back.metadata == {"src": "a", "secret": 1}
    assert back.excluded_llm_metadata_keys == ["secret"]
    assert back.source_node is not None and back.source_node.node_id == "doc-1"
