"""Embeddings for LangChain and LlamaIndex: the vectors sentence-transformers gives on the same checkpoint."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag_retrieval_integrations import Reranker

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from pydantic import ValidationError

from rag_retrieval_integrations.langchain import RagRetrievalEmbeddings
from rag_retrieval_integrations.llama_index import RagRetrievalEmbedding

QUERIES = ["what is a panda?", "capital of france"]
DOCS = [
    "The giant panda is a bear native to China.",
    "Paris is the capital and most populous city of France.",
    "",
    "Pandas eat bamboo. " * 60,  # longer than max_length
]


def st_model(path, truncate_dim=None):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", truncate_dim=truncate_dim)


@pytest.fixture(scope="module")
def prompted_bi_encoder(bi_encoder, tmp_path_factory):
    """The tiny bi-encoder saved with its own query/document prompts, as e5 or bge checkpoints are."""
    model = st_model(bi_encoder)
    model.prompts = {"query": "query: ", "document": "passage: "}
    path = tmp_path_factory.mktemp("models") / "bi-encoder-prompts"
    model.save(str(path))
    return path


def test_core_encode_methods_equal_sentence_transformers(bi_encoder):
    ours = Reranker(bi_encoder, model_type="embedding", truncate_dim=8, query_prompt="q: ")
    reference = st_model(bi_encoder, truncate_dim=8)
    np.testing.assert_allclose(ours.encode_queries(QUERIES), reference.encode_query(QUERIES, prompt="q: "), atol=1e-6)
    np.testing.assert_allclose(ours.encode_documents(DOCS), reference.encode_document(DOCS), atol=1e-6)
    assert ours.encode_documents([]).shape == (0, 8)
    with pytest.raises(TypeError, match=r"docs\[1\]"):
        ours.encode_documents(["a", None])
    with pytest.raises(ValueError, match="batch_size"):
        ours.encode_queries(QUERIES, batch_size=0)


class Wrapper:
    """One interface over both frameworks' embeddings: sync and async, queries and documents."""

    def __init__(self, framework: str, **fields):
        self.framework = framework
        if framework == "langchain":
            self.model = RagRetrievalEmbeddings(**fields)
            self.query, self.docs = self.model.embed_query, self.model.embed_documents
            self.aquery, self.adocs = self.model.aembed_query, self.model.aembed_documents
        else:
            self.model = RagRetrievalEmbedding(**fields)
            self.query, self.docs = self.model.get_query_embedding, self.model.get_text_embedding_batch
            self.aquery, self.adocs = self.model.aget_query_embedding, self.model.aget_text_embedding_batch


FRAMEWORKS = ["langchain", "llama_index"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("truncate_dim", [None, 8])
def test_embeddings_equal_sentence_transformers(bi_encoder, framework, truncate_dim):
    wrapper = Wrapper(framework, model=bi_encoder, truncate_dim=truncate_dim)
    reference = st_model(bi_encoder, truncate_dim=truncate_dim)
    docs = wrapper.docs(DOCS)
    query = wrapper.query(QUERIES[0])
    assert isinstance(query, list) and isinstance(query[0], float) and len(query) == (truncate_dim or 32)
    assert all(len(d) == len(query) for d in docs)
    np.testing.assert_allclose(docs, reference.encode_document(DOCS), atol=1e-6)
    np.testing.assert_allclose(query, reference.encode_query(QUERIES[0]), atol=1e-6)
    assert asyncio.run(wrapper.adocs(DOCS)) == docs
    assert asyncio.run(wrapper.aquery(QUERIES[0])) == query
    assert wrapper.docs([]) == []


def test_llama_index_single_texts_and_batch_size(bi_encoder):
    embed_model = RagRetrievalEmbedding(model=bi_encoder, embed_batch_size=3)
    docs = embed_model.get_text_embedding_batch(DOCS)
    one_by_one = [embed_model.get_text_embedding(DOCS[0]), asyncio.run(embed_model.aget_text_embedding(DOCS[1]))]
    np.testing.assert_allclose(one_by_one, docs[:2], atol=1e-6)  # other batches, other padding
    assert embed_model.model_name == str(bi_encoder)
    assert embed_model.to_dict()["class_name"] == "RagRetrievalEmbedding"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_prompts_are_applied(bi_encoder, prompted_bi_encoder, framework):
    def vectors(**fields):
        wrapper = Wrapper(framework, **fields)
        return wrapper.query(QUERIES[0]), wrapper.docs(DOCS[:1])[0]

    plain = st_model(bi_encoder)
    # explicit instructions
    query, doc = vectors(model=bi_encoder, query_prompt="query: ", document_prompt="passage: ")
    np.testing.assert_allclose(query, plain.encode("query: " + QUERIES[0]), atol=1e-6)
    np.testing.assert_allclose(doc, plain.encode("passage: " + DOCS[0]), atol=1e-6)
    assert not np.allclose(query, plain.encode(QUERIES[0]), atol=1e-4)
    # the checkpoint's own prompts, by default
    default_query, default_doc = vectors(model=prompted_bi_encoder)
    np.testing.assert_allclose(default_query, query, atol=1e-6)
    np.testing.assert_allclose(default_doc, doc, atol=1e-6)


def test_one_loaded_model_serves_both_frameworks(bi_encoder):
    shared = Reranker(bi_encoder, model_type="embedding", truncate_dim=16)
    langchain = RagRetrievalEmbeddings(model=shared)
    llama_index = RagRetrievalEmbedding(model=shared, truncate_dim=16)  # matching the model's own: allowed
    assert langchain.embedding_model is llama_index.embedding_model is shared
    assert langchain.embed_documents(DOCS) == llama_index.get_text_embedding_batch(DOCS)
    assert len(langchain.embed_query(QUERIES[0])) == 16
    assert langchain.model_dump()["model"] == str(bi_encoder)


def test_threads_sharing_one_model_get_the_results_of_sequential_calls(bi_encoder):
    # The reranker's split-max windows and the embeddings use the model's tokenizer with different
    # settings; without the per-model lock, concurrent calls corrupt each other's batches.
    from langchain_core.documents import Document

    from rag_retrieval_integrations.langchain import RagRetrievalReranker

    shared = Reranker(bi_encoder, model_type="embedding", long_doc="split-max", max_length=24, overlap=4)
    embeddings, compressor = RagRetrievalEmbeddings(model=shared), RagRetrievalReranker(model=shared, top_n=None)
    batches = [[text * (1 + (i + j) % 4) for j, text in enumerate(DOCS)] for i in range(4)]

    def call(i: int):
        batch = batches[i % len(batches)]
        if i % 2:
            return embeddings.embed_documents(batch)
        ranked = compressor.compress_documents([Document(t) for t in batch], QUERIES[0])
        return [d.metadata["relevance_score"] for d in ranked]

    sequential = [call(i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(call, range(64)))
    assert threaded == [sequential[i % 8] for i in range(64)]


def test_bad_options(bi_encoder, bert_cross_encoder):
    shared = Reranker(bi_encoder, model_type="embedding")
    with pytest.raises(ValueError, match="truncate_dim=8"):
        RagRetrievalEmbeddings(model=shared, truncate_dim=8)
    with pytest.raises(ValueError, match="model_kwargs"):
        RagRetrievalEmbedding(model=shared, model_kwargs={"device": "cpu"})
    with pytest.raises(TypeError, match="embedding model"):
        RagRetrievalEmbeddings(model=Reranker(bert_cross_encoder))
    with pytest.raises(ValueError, match="truncate_dim=4096"):
        RagRetrievalEmbedding(model=bi_encoder, truncate_dim=4096)
    for cls in (RagRetrievalEmbeddings, RagRetrievalEmbedding):
        with pytest.raises(ValidationError, match="truncate_dim"):
            cls(model=bi_encoder, truncate_dim=0)
    with pytest.raises(TypeError, match="text"):
        RagRetrievalEmbeddings(model=shared).embed_query(["not", "a", "str"])
