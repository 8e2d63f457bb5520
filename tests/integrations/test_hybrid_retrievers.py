"""BM25Retriever and HybridRetriever, the same in LangChain and LlamaIndex: what they return against the
core indexes, adds, deletes and saves; then fused-then-reranked inside each framework's own pipeline
(``ContextualCompressionRetriever``, ``RetrieverQueryEngine``)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("bm25s")
pytest.importorskip("faiss")
pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from kit.checkpoints import CORPUS
from kit.frameworks import FRAMEWORKS, side

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import BM25Index, HybridIndex, MRLIndex

TEXTS = CORPUS[:23]
IDS = [f"d{i}" for i in range(len(TEXTS))]
METADATAS = [{"n": i} for i in range(len(TEXTS))]
QUERY = "what is a panda?"
NEW = "Red pandas live in the Himalayas and eat bamboo."


@pytest.fixture(scope="module")
def embedder(bi_encoder):
    return Reranker(bi_encoder)


def hybrid_parts(embedder) -> dict:
    return {"bm25": BM25Index(), "dense": MRLIndex(embedder, search_dim=8)}


def reference(kind: str, embedder, texts=TEXTS, ids=IDS, **options):
    index = BM25Index() if kind == "bm25" else HybridIndex(hybrid_parts(embedder), **options)
    index.add(list(texts), ids=list(ids))
    return index


@pytest.fixture(params=FRAMEWORKS)
def framework(request):
    return request.param


@pytest.mark.parametrize("kind", ["bm25", "hybrid"])
def test_returns_the_index_ranking_adds_deletes_and_reloads(framework, kind, embedder, tmp_path):
    face = side(framework, kind)
    options = {"parts": hybrid_parts(embedder), "fusion": "zscore"} if kind == "hybrid" else {"k1": 1.2}
    retriever = face.build(None, TEXTS, IDS, METADATAS, k=4, **options)
    want = reference(kind, embedder, **({"fusion": "zscore"} if kind == "hybrid" else {}))
    if kind == "bm25":
        want = BM25Index(k1=1.2)
        want.add(TEXTS, ids=IDS)
    hits = want.search(QUERY, k=4)
    found = face.retrieve(retriever, QUERY)
    assert [f.id for f in found] == [h.id for h in hits]
    assert [f.text for f in found] == [h.text for h in hits]
    assert [f.metadata for f in found] == [METADATAS[IDS.index(h.id)] for h in hits]
    assert [f.score for f in found] == pytest.approx([h.score for h in hits], abs=1e-6)
    assert face.aretrieve(retriever, QUERY) == found

    assert face.add(retriever, [NEW], ["new"], [{"n": -1}]) == ["new"]
    assert "new" in [f.id for f in face.retrieve(face.over(retriever.index, k=30), "red pandas Himalayas")]
    retriever.delete(["new"])
    assert face.retrieve(retriever, QUERY) == found
    retriever.save(tmp_path / "index")
    assert face.retrieve(face.load(tmp_path / "index", None, k=4), QUERY) == found
    with pytest.raises(TypeError, match="encodes without a model"):
        face.build(embedder, TEXTS, IDS, METADATAS, k=4, **options)


def test_hybrid_retriever_fields_override_the_index_settings(framework, embedder):
    face = side(framework, "hybrid")
    retriever = face.build(None, TEXTS, IDS, METADATAS, k=3, parts=hybrid_parts(embedder))
    index = retriever.index
    if framework == "langchain":
        tuned = type(retriever)(index=index, k=3, fusion="minmax", weights={"bm25": 0.2}, candidates=5)
    else:
        tuned = type(retriever)(index, similarity_top_k=3, fusion="minmax", weights={"bm25": 0.2}, candidates=5)
    hits = index.search(QUERY, k=3, fusion="minmax", weights={"bm25": 0.2}, candidates=5)
    assert [f.id for f in face.retrieve(tuned, QUERY)] == [h.id for h in hits]
    assert [f.id for f in face.retrieve(retriever, QUERY)] == [h.id for h in index.search(QUERY, k=3)]
    vectors_only = HybridIndex({"bm25": BM25Index(), "dense": MRLIndex(dim=4)})
    with pytest.raises(ValueError, match="part 'dense'"):
        face.over(vectors_only, k=3)


def test_langchain_hybrid_then_rerank_in_contextual_compression(embedder, bert_cross_encoder):
    pytest.importorskip("langchain_classic")
    from langchain_classic.retrievers import ContextualCompressionRetriever

    from rag_retrieval_integrations.langchain import HybridRetriever, RagRetrievalReranker

    retriever = HybridRetriever.from_texts(TEXTS, parts=hybrid_parts(embedder), metadatas=METADATAS, k=6)
    reranker = RagRetrievalReranker(model=bert_cross_encoder, top_n=2)
    pipeline = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=retriever)
    fused = retriever.invoke(QUERY)
    assert [d.page_content for d in fused] == [h.text for h in reference("hybrid", embedder).search(QUERY, k=6)]
    final = pipeline.invoke(QUERY)
    reranked = reranker.reranker.rank(QUERY, [d.page_content for d in fused], top_k=2)
    assert [d.page_content for d in final] == reranked.texts
    assert [d.metadata["relevance_score"] for d in final] == pytest.approx(reranked.scores)
    assert [d.metadata["n"] for d in final] == [fused[i].metadata["n"] for i in reranked.indices]
    assert [d.page_content for d in asyncio.run(pipeline.ainvoke(QUERY))] == reranked.texts


def test_llama_index_hybrid_then_rerank_in_a_query_engine(embedder, bert_cross_encoder):
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.schema import MetadataMode, TextNode

    from rag_retrieval_integrations.llama_index import HybridRetriever, RagRetrievalRerank

    nodes = [
        TextNode(id_=i, text=t, metadata=m, excluded_embed_metadata_keys=["n"])
        for i, t, m in zip(IDS, TEXTS, METADATAS)
    ]
    retriever = HybridRetriever.from_nodes(nodes, parts=hybrid_parts(embedder), fusion="minmax", similarity_top_k=5)
    rerank = RagRetrievalRerank(model=bert_cross_encoder, top_n=2)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(max_tokens=8), node_postprocessors=[rerank])
    response = engine.query(QUERY)
    fused = retriever.retrieve(QUERY)
    want = reference("hybrid", embedder, fusion="minmax").search(QUERY, k=5)
    assert [n.node.node_id for n in fused] == [h.id for h in want]
    reranked = Reranker(bert_cross_encoder).rank(
        QUERY, [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in fused], top_k=2
    )
    assert [n.node.node_id for n in response.source_nodes] == [fused[i].node.node_id for i in reranked.indices]
    assert [n.score for n in response.source_nodes] == pytest.approx(reranked.scores, abs=1e-5)
    assert [n.node.metadata["n"] for n in response.source_nodes] == [
        int(fused[i].node.node_id[1:]) for i in reranked.indices
    ]
