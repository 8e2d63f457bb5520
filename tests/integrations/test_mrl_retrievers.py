"""The Matryoshka retrievers as users see them: inside LangChain and LlamaIndex pipelines, over our index
and over the frameworks' own vector stores (what the index retrievers of both frameworks return, add,
delete and save: test_index_retrievers.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("langchain_classic")
pytest.importorskip("llama_index.core")

from kit.texts import QUERIES, QUERY, TEXTS
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, QueryBundle, TextNode

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import MRLIndex
from rag_retrieval_integrations.core.models.embedding import EmbeddingModel
from rag_retrieval_integrations.langchain import (
    MRLPrefixEmbeddings,
    MRLRetriever,
    MRLVectorStoreRetriever,
    RagRetrievalReranker,
)
from rag_retrieval_integrations.llama_index import MRLPrefixEmbedding, RagRetrievalRerank
from rag_retrieval_integrations.llama_index import MRLRetriever as LlamaMRLRetriever
from rag_retrieval_integrations.llama_index import MRLVectorStoreRetriever as LlamaMRLVectorStoreRetriever

SEARCH_DIM = 8  # of the tiny bi-encoder's 32


@pytest.fixture(scope="module")
def embedder(bi_encoder):
    return Reranker(bi_encoder)


@pytest.fixture(scope="module")
def cross_encoder(bert_cross_encoder):
    return Reranker(bert_cross_encoder)


def documents() -> list[Document]:
    return [Document(text, id=f"doc-{i}", metadata={"i": i}) for i, text in enumerate(TEXTS)]


def make_nodes() -> list[TextNode]:
    return [
        TextNode(
            id_=f"node-{i}",
            text=text,
            metadata={"topic": text.split()[1], "file_path": f"/data/{i}.txt"},
            excluded_embed_metadata_keys=["file_path"],
            excluded_llm_metadata_keys=["file_path"],
        )
        for i, text in enumerate(TEXTS)
    ]


def ranked(embedder, query: str, texts: list[str], k: int) -> list[tuple[int, float]]:
    """The reference: the embedding model ranking every text by its full vectors."""
    return [(r.index, r.score) for r in embedder.rank(query, texts, top_k=k)]


def ids_and_scores(docs: list[Document]) -> list[tuple[str | None, float]]:
    return [(d.id, d.metadata["relevance_score"]) for d in docs]


class CountingEncoder:
    """Counts the texts an embedding model encodes as documents."""

    def __init__(self, monkeypatch):
        self.count = 0
        original = EmbeddingModel.encode_documents

        def encode_documents(model, docs, **kwargs):
            self.count += len(docs)
            return original(model, docs, **kwargs)

        monkeypatch.setattr(EmbeddingModel, "encode_documents", encode_documents)


# ---- LangChain ----------------------------------------------------------------------------------


def test_langchain_retriever_in_a_compression_retriever(embedder, cross_encoder):
    base = MRLRetriever.from_documents(documents(), embedder, search_dim=SEARCH_DIM, k=6)
    pipeline = ContextualCompressionRetriever(
        base_compressor=RagRetrievalReranker(model=cross_encoder, top_n=3), base_retriever=base
    )
    got = pipeline.invoke(QUERY)
    candidates = base.invoke(QUERY)
    want = cross_encoder.rank(QUERY, [d.page_content for d in candidates], top_k=3)
    assert [d.id for d in got] == [candidates[r.index].id for r in want]
    assert [d.metadata["relevance_score"] for d in got] == pytest.approx([r.score for r in want], abs=1e-6)
    assert ids_and_scores(asyncio.run(pipeline.ainvoke(QUERY))) == ids_and_scores(got)


def test_langchain_from_texts(embedder):
    retriever = MRLRetriever.from_texts(
        TEXTS, embedder, metadatas=[{"i": i} for i in range(len(TEXTS))], search_dim=SEARCH_DIM, k=2
    )
    assert [d.metadata["i"] for d in retriever.invoke(QUERY)] == [i for i, _ in ranked(embedder, QUERY, TEXTS, 2)]
    with pytest.raises(ValueError, match="metadatas has 1 entries for 8 texts"):
        MRLRetriever.from_texts(TEXTS, embedder, metadatas=[{}])


def test_langchain_add_delete_and_persist(embedder, tmp_path):
    retriever = MRLRetriever(index=MRLIndex(embedder, search_dim=SEARCH_DIM), k=2, score_key="mrl_score")
    assert retriever.add_documents(documents()[:4]) == ["doc-0", "doc-1", "doc-2", "doc-3"]
    assert asyncio.run(retriever.aadd_documents([Document(TEXTS[5])], ids=["hamlet"])) == ["hamlet"]
    assert retriever.invoke(TEXTS[5])[0].id == "hamlet"  # a text is its own nearest neighbour
    retriever.delete(["hamlet", "doc-0"])
    assert retriever.index.ids == ["doc-1", "doc-2", "doc-3"]
    retriever.index.save(tmp_path / "index")
    reloaded = MRLRetriever(index=MRLIndex.load(tmp_path / "index", embedder), k=2, score_key="mrl_score")
    got = reloaded.invoke(QUERY)
    assert [(d.id, d.metadata) for d in got] == [(d.id, d.metadata) for d in retriever.invoke(QUERY)]
    assert "mrl_score" in got[0].metadata and "relevance_score" not in got[0].metadata


def test_langchain_vector_store_first_stage(embedder, monkeypatch):
    counter = CountingEncoder(monkeypatch)
    embeddings = MRLPrefixEmbeddings(model=embedder, search_dim=SEARCH_DIM)
    store = InMemoryVectorStore(embedding=embeddings)
    retriever = MRLVectorStoreRetriever(vectorstore=store, k=3, vector_dtype="float32")
    retriever.add_documents(documents(), ids=[d.id for d in documents()])
    assert counter.count == len(TEXTS)  # each document encoded once, for both vectors
    stored = store.get_by_ids(["doc-0"])[0]
    assert len(store.store["doc-0"]["vector"]) == SEARCH_DIM and "mrl_vector" in stored.metadata
    for query in QUERIES:
        got = retriever.invoke(query)
        want = ranked(embedder, query, TEXTS, 3)
        assert [d.id for d in got] == [f"doc-{i}" for i, _ in want]
        assert [d.metadata["relevance_score"] for d in got] == pytest.approx([s for _, s in want], abs=1e-5)
        assert all(set(d.metadata) == {"i", "relevance_score"} for d in got)
        assert ids_and_scores(asyncio.run(retriever.ainvoke(query))) == ids_and_scores(got)


def test_langchain_vector_store_rescores_only_the_store_shortlist(embedder):
    retriever = MRLVectorStoreRetriever.from_documents(
        documents(), embedder, search_dim=4, k=2, shortlist_factor=1, ids=[d.id for d in documents()]
    )
    assert isinstance(retriever.vectorstore, InMemoryVectorStore)
    for query in QUERIES:
        prefix = retriever.embeddings.embed_query(query)
        shortlist = retriever.vectorstore.similarity_search_by_vector(prefix, k=2)
        texts = [d.page_content for d in shortlist]
        want = ranked(embedder, query, texts, 2)
        got = retriever.invoke(query)
        assert [d.id for d in got] == [shortlist[i].id for i, _ in want]
        # float16 full vectors in the metadata (the default): scores within 1e-3
        assert [d.metadata["relevance_score"] for d in got] == pytest.approx([s for _, s in want], abs=2e-3)


def test_langchain_vector_store_in_a_compression_retriever(embedder, cross_encoder):
    base = MRLVectorStoreRetriever.from_documents(documents(), embedder, search_dim=SEARCH_DIM, k=6)
    pipeline = ContextualCompressionRetriever(
        base_compressor=RagRetrievalReranker(model=cross_encoder, top_n=2), base_retriever=base
    )
    candidates = base.invoke(QUERY)
    want = cross_encoder.rank(QUERY, [d.page_content for d in candidates], top_k=2)
    assert [d.page_content for d in pipeline.invoke(QUERY)] == [r.text for r in want]


def test_langchain_vector_store_errors(embedder, bi_encoder):
    embeddings = MRLPrefixEmbeddings(model=embedder, search_dim=SEARCH_DIM)
    store = InMemoryVectorStore(embedding=embeddings)
    store.add_documents([Document(TEXTS[0], id="plain")])  # added around the retriever: no full vector
    with pytest.raises(ValueError, match=r"document 'plain' .* no full vector in metadata\['mrl_vector'\]"):
        MRLVectorStoreRetriever(vectorstore=store).invoke(QUERY)
    with pytest.raises(ValueError, match="create the vector store with embedding=MRLPrefixEmbeddings"):
        MRLVectorStoreRetriever(vectorstore=InMemoryVectorStore(embedding=embedder_as_plain_embeddings(bi_encoder)))
    with pytest.raises(ValueError, match="keep 8 dims but embeddings= keeps 4"):
        MRLVectorStoreRetriever(vectorstore=store, embeddings=MRLPrefixEmbeddings(model=embedder, search_dim=4))


def embedder_as_plain_embeddings(path):
    from rag_retrieval_integrations.langchain import RagRetrievalEmbeddings

    return RagRetrievalEmbeddings(model=path, truncate_dim=SEARCH_DIM)


# ---- LlamaIndex ---------------------------------------------------------------------------------


def embed_texts(nodes: list[TextNode]) -> list[str]:
    return [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]


def test_llama_index_query_engine_with_reranker(embedder, cross_encoder):
    retriever = LlamaMRLRetriever.from_nodes(make_nodes(), embedder, search_dim=SEARCH_DIM, similarity_top_k=6)
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(), node_postprocessors=[RagRetrievalRerank(model=cross_encoder, top_n=3)]
    )
    response = engine.query(QUERY)
    candidates = retriever.retrieve(QUERY)
    want = cross_encoder.rank(QUERY, embed_texts([n.node for n in candidates]), top_k=3)
    assert [n.node.node_id for n in response.source_nodes] == [candidates[r.index].node.node_id for r in want]
    assert [n.score for n in response.source_nodes] == pytest.approx([r.score for r in want], abs=1e-6)
    again = asyncio.run(engine.aquery(QUERY))
    assert [n.node.node_id for n in again.source_nodes] == [n.node.node_id for n in response.source_nodes]


def test_llama_index_vector_store_first_stage(embedder, monkeypatch):
    counter = CountingEncoder(monkeypatch)
    nodes = make_nodes()
    retriever = LlamaMRLVectorStoreRetriever.from_nodes(
        nodes, embedder, search_dim=SEARCH_DIM, similarity_top_k=3, vector_dtype="float32"
    )
    assert counter.count == len(nodes)  # each node encoded once, for both vectors
    vector_store = retriever.index.vector_store
    assert len(vector_store.get("node-0")) == SEARCH_DIM  # the store holds the prefixes
    for query in QUERIES:
        got = retriever.retrieve(query)
        want = ranked(embedder, query, embed_texts(nodes), 3)
        assert [n.node.node_id for n in got] == [f"node-{i}" for i, _ in want]
        assert [n.score for n in got] == pytest.approx([s for _, s in want], abs=1e-5)
        assert all("mrl_vector" not in n.node.metadata for n in got)
        assert got[0].node.get_content(MetadataMode.LLM) == nodes[want[0][0]].get_content(MetadataMode.LLM)
        aretrieved = asyncio.run(retriever.aretrieve(query))
        assert [(n.node.node_id, n.score) for n in aretrieved] == [(n.node.node_id, n.score) for n in got]
    assert nodes[0].embedding is None and "mrl_vector" not in nodes[0].metadata  # the caller's nodes


def test_llama_index_vector_store_query_engine(embedder, cross_encoder):
    embed_model = MRLPrefixEmbedding(model=embedder, search_dim=SEARCH_DIM)
    index = VectorStoreIndex(nodes=[], embed_model=embed_model)
    retriever = LlamaMRLVectorStoreRetriever(index, similarity_top_k=6)
    retriever.add_nodes(make_nodes())
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(), node_postprocessors=[RagRetrievalRerank(model=cross_encoder, top_n=2)]
    )
    candidates = retriever.retrieve(QueryBundle(QUERY))
    want = cross_encoder.rank(QUERY, embed_texts([n.node for n in candidates]), top_k=2)
    assert [n.node.node_id for n in engine.query(QUERY).source_nodes] == [
        candidates[r.index].node.node_id for r in want
    ]
    # the index's own retriever, which embeds the query with the index's embed model, shortlists the same
    prefix = np.asarray(embed_model.get_query_embedding(QUERY))
    assert prefix.shape == (SEARCH_DIM,) and np.linalg.norm(prefix) == pytest.approx(1.0, abs=1e-6)


def test_llama_index_errors(embedder):
    with pytest.raises(ValueError, match="index has no model"):
        LlamaMRLRetriever(MRLIndex(dim=4))
    with pytest.raises(ValueError, match="similarity_top_k must be a positive integer, got 0"):
        LlamaMRLRetriever(MRLIndex(embedder, search_dim=SEARCH_DIM), similarity_top_k=0)
    plain = VectorStoreIndex(nodes=[], embed_model=MRLPrefixEmbedding(model=embedder, search_dim=SEARCH_DIM))
    plain.insert_nodes([TextNode(id_="plain", text=TEXTS[0])])  # inserted around the retriever: no full vector
    with pytest.raises(ValueError, match=r"node 'plain' .* no full vector"):
        LlamaMRLVectorStoreRetriever(plain).retrieve(QUERY)
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a LlamaIndex node .* got str"):
        LlamaMRLVectorStoreRetriever(plain).add_nodes(TEXTS)


# ---- the two frameworks behave alike ------------------------------------------------------------

FRAMEWORK_RETRIEVERS = {
    "langchain": lambda index: MRLRetriever(index=index),
    "llama_index": lambda index: LlamaMRLRetriever(index),
}
FRAMEWORK_PREFIX_EMBEDDINGS = {"langchain": MRLPrefixEmbeddings, "llama_index": MRLPrefixEmbedding}


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_RETRIEVERS))
def test_an_index_without_a_model_is_refused_when_the_retriever_is_built(framework):
    """Only LlamaIndex's retriever refused it when built; LangChain's failed at the first query."""
    with pytest.raises(ValueError, match="index has no model to encode queries with"):
        FRAMEWORK_RETRIEVERS[framework](MRLIndex(dim=4))


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_PREFIX_EMBEDDINGS))
def test_prefix_embeddings_pass_their_batch_size_to_the_model(framework, embedder):
    """Only LangChain's prefix embeddings passed batch_size on to the encoder."""
    embeddings = FRAMEWORK_PREFIX_EMBEDDINGS[framework](model=embedder, search_dim=SEARCH_DIM, batch_size=3)
    assert embeddings.encoder.batch_size == 3
