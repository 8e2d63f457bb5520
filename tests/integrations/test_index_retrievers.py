"""The retrievers over our indexes, the same in LangChain and LlamaIndex: each test runs for both
frameworks and both index kinds (ColBERT, Matryoshka) and checks what a user gets back against
the model's own ranking. Framework pipelines (compression retrievers, query engines) and each
framework's own extras are tested in test_colbert_retrievers.py and test_mrl_retrievers.py."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss")
pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from kit import colbert as tiny_colbert
from kit.checkpoints import CORPUS
from kit.frameworks import FRAMEWORKS, KINDS, side

from rag_retrieval_integrations import Reranker

TEXTS = CORPUS[:23]
IDS = [f"d{i}" for i in range(len(TEXTS))]
METADATAS = [{"n": i, "tag": f"t{i % 3}"} for i in range(len(TEXTS))]
QUERY = "what is a panda?"
NEW = "Red pandas live in the Himalayas and eat bamboo."
ATOL = {"colbert": 1e-2, "mrl": 1e-5}  # ColBERT's index stores float16 token vectors
INDEX_OPTIONS = {"colbert": {}, "mrl": {"search_dim": 8}}  # MRL: a shortlist on 8 of the 32 dims


@pytest.fixture(scope="module")
def models(tmp_path_factory, bi_encoder):
    return {
        "colbert": Reranker(tiny_colbert.build_tiny_colbert(tmp_path_factory.mktemp("retrievers") / "colbert")),
        "mrl": Reranker(bi_encoder),
    }


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture(params=FRAMEWORKS)
def framework(request, kind):
    return side(request.param, kind)


def test_returns_the_models_ranking_with_ids_texts_and_metadata(framework, kind, models):
    model = models[kind]
    retriever = framework.build(model, TEXTS, IDS, METADATAS, k=3, **INDEX_OPTIONS[kind])
    want = model.rank(QUERY, TEXTS, top_k=3)
    found = framework.retrieve(retriever, QUERY)
    assert [f.id for f in found] == [IDS[i] for i in want.indices]
    assert [f.text for f in found] == want.texts
    assert [f.metadata for f in found] == [METADATAS[i] for i in want.indices]
    assert [f.score for f in found] == pytest.approx(want.scores, abs=ATOL[kind])
    assert framework.aretrieve(retriever, QUERY) == found


def test_added_documents_are_found_deleted_ones_are_not_and_a_saved_index_reloads(framework, kind, models, tmp_path):
    model = models[kind]
    retriever = framework.build(model, TEXTS, IDS, METADATAS, k=3, **INDEX_OPTIONS[kind])
    before = framework.retrieve(retriever, QUERY)
    assert framework.add(retriever, [NEW], ["new"], [{"n": -1}]) == ["new"]
    everything = framework.retrieve(framework.over(retriever.index, k=30), QUERY)
    assert len(everything) == len(TEXTS) + 1
    (added,) = [f for f in everything if f.id == "new"]
    assert added.text == NEW and added.metadata == {"n": -1}
    assert added.score == pytest.approx(model.compute_score((QUERY, NEW)), abs=ATOL[kind])

    framework.add(retriever, [TEXTS[0]], ["new"], [{"n": -2}])  # an indexed id: replaced, not added
    assert len(framework.retrieve(framework.over(retriever.index, k=30), QUERY)) == len(TEXTS) + 1
    retriever.delete(["new"])
    assert "new" not in [f.id for f in framework.retrieve(framework.over(retriever.index, k=30), QUERY)]
    with pytest.raises(KeyError, match="no-such-id"):
        retriever.delete(["no-such-id"])
    assert framework.retrieve(retriever, QUERY) == before

    retriever.save(tmp_path / "index")
    reloaded = framework.load(tmp_path / "index", model, k=3)
    assert framework.retrieve(reloaded, QUERY) == before
    assert framework.retrieve(framework.load(tmp_path / "index", None, k=3), QUERY) == before  # model from the folder


def test_bad_settings_are_refused_naming_them(framework, kind, models):
    retriever = framework.build(models[kind], TEXTS[:3], IDS[:3], METADATAS[:3], k=2, **INDEX_OPTIONS[kind])
    top_k = {"langchain": r"\nk\n.*greater than 0", "llama_index": "similarity_top_k must be a positive integer"}
    with pytest.raises(ValueError, match=top_k[framework.name]):
        framework.over(retriever.index, k=0)
    index_class = type(retriever.index).__name__  # LangChain's pydantic error is a ValueError, LlamaIndex's a TypeError
    with pytest.raises((TypeError, ValueError), match=f"(instance of|must be an?) {index_class}"):
        framework.over("not an index", k=2)


def test_llama_index_nodes_are_indexed_on_their_embed_content_and_come_back_whole(kind, models):
    """As VectorStoreIndex embeds and RagRetrievalRerank scores: the text with the metadata not
    excluded from embedding (ColBERT's retriever used to index the bare text)."""
    from llama_index.core.schema import MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode

    model = models[kind]
    nodes = [
        TextNode(
            id_=f"n{i}",
            text=text,
            metadata={"topic": text.split()[1], "file_path": f"/data/{i}.txt"},
            excluded_embed_metadata_keys=["file_path"],
            excluded_llm_metadata_keys=["file_path"],
        )
        for i, text in enumerate(TEXTS[:8])
    ]
    nodes[0].relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="doc-1")
    retriever = side("llama_index", kind).cls.from_nodes(nodes, model, similarity_top_k=8, **INDEX_OPTIONS[kind])
    embedded = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    assert embedded[0].startswith("topic: ")
    want = model.rank(QUERY, embedded)
    found = retriever.retrieve(QUERY)
    assert [n.node.node_id for n in found] == [nodes[i].node_id for i in want.indices]
    assert [n.score for n in found] == pytest.approx(want.scores, abs=ATOL[kind])
    back = next(n.node for n in found if n.node.node_id == "n0")
    assert back.text == TEXTS[0] and back.metadata == nodes[0].metadata
    assert back.excluded_llm_metadata_keys == ["file_path"]
    assert back.get_content(MetadataMode.LLM) == nodes[0].get_content(MetadataMode.LLM)
    assert back.source_node is not None and back.source_node.node_id == "doc-1"
