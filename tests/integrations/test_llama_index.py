"""The LlamaIndex postprocessor as a user sees it: inside a real VectorStoreIndex query engine."""

from __future__ import annotations

import asyncio
import copy
import math

import pytest

pytest.importorskip("llama_index.core")

from kit.texts import QUERY, TEXTS
from llama_index.core import VectorStoreIndex
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from pydantic import ValidationError

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.llama_index import RagRetrievalEmbedding, RagRetrievalRerank


def make_nodes() -> list[TextNode]:
    """Nodes with metadata, one key of it hidden from the embed text, as LlamaIndex readers make them."""
    return [
        TextNode(
            id_=f"node-{i}",
            text=text,
            metadata={"topic": text.split()[1], "file_path": f"/data/{i}.txt"},
            excluded_embed_metadata_keys=["file_path"],
        )
        for i, text in enumerate(TEXTS)
    ]


def scored(nodes: list[TextNode]) -> list[NodeWithScore]:
    return [NodeWithScore(node=n, score=1.0 - i / 10) for i, n in enumerate(nodes)]


@pytest.fixture(scope="module", params=["bert_cross_encoder", "decoder_llm", "listwise"])
def ranker(request):
    """One loaded model per checkpoint kind, shared by every wrapper of the module (``listwise``: the
    tiny chat LLM ranking listwise, FIRST-style)."""
    if request.param == "listwise":
        return Reranker(request.getfixturevalue("decoder_llm"), model_type="llm-listwise", method="first")
    return Reranker(request.getfixturevalue(request.param))


@pytest.fixture(scope="module")
def index(bi_encoder):
    return VectorStoreIndex(make_nodes(), embed_model=RagRetrievalEmbedding(model=bi_encoder))


def expected(ranker, query: str, nodes: list[NodeWithScore], **options) -> list[tuple[str, float]]:
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    ranked = ranker.rank(query, texts, normalize=options.get("normalize", False))
    threshold = options.get("score_threshold", -math.inf)
    keep = [(nodes[r.index].node.node_id, r.score) for r in ranked if r.score >= threshold]
    return keep[: options.get("top_n")]


def ids_and_scores(nodes: list[NodeWithScore]) -> list[tuple[str, float]]:
    return [(n.node.node_id, n.score) for n in nodes]


def test_query_engine_returns_source_nodes_in_score_order(ranker, index):
    engine = index.as_query_engine(
        similarity_top_k=6, node_postprocessors=[RagRetrievalRerank(model=ranker, top_n=3)], llm=MockLLM()
    )
    response = engine.query(QUERY)
    retrieved = index.as_retriever(similarity_top_k=6).retrieve(QUERY)
    want = expected(ranker, QUERY, retrieved, top_n=3)
    assert [n.node.node_id for n in response.source_nodes] == [i for i, _ in want]
    assert [n.score for n in response.source_nodes] == pytest.approx([s for _, s in want], abs=1e-6)
    assert ids_and_scores(asyncio.run(engine.aquery(QUERY)).source_nodes) == ids_and_scores(response.source_nodes)


def test_nodes_are_read_with_their_embed_metadata(ranker):
    nodes = scored(make_nodes())
    got = RagRetrievalRerank(model=ranker, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    assert ids_and_scores(got) == expected(ranker, QUERY, nodes)
    assert "topic: giant" in nodes[0].node.get_content(metadata_mode=MetadataMode.EMBED)
    assert "file_path" not in nodes[0].node.get_content(metadata_mode=MetadataMode.EMBED)


def test_score_threshold_drops_exactly_what_is_below(ranker):
    nodes = scored(make_nodes())
    normalized = [s for _, s in expected(ranker, QUERY, nodes, normalize=True)]
    threshold = normalized[3]  # four nodes score at least this
    rerank = RagRetrievalRerank(model=ranker, top_n=None, normalize=True, score_threshold=threshold)
    got = rerank.postprocess_nodes(nodes, query_str=QUERY)
    assert ids_and_scores(got) == expected(ranker, QUERY, nodes, normalize=True, score_threshold=threshold)
    assert len(got) == 4 and all(0 < n.score < 1 for n in got)


def test_keep_retrieval_score_without_changing_the_callers_nodes(ranker):
    nodes = scored(make_nodes())
    before = copy.deepcopy(nodes)
    got = RagRetrievalRerank(model=ranker, top_n=None, keep_retrieval_score=True).postprocess_nodes(
        nodes, query_str=QUERY
    )
    first_stage = {n.node.node_id: n.score for n in nodes}
    assert all(n.node.metadata["retrieval_score"] == first_stage[n.node.node_id] for n in got)
    assert [(n.node.node_id, n.score, n.node.metadata) for n in nodes] == [
        (n.node.node_id, n.score, n.node.metadata) for n in before
    ]
    by_id = {n.node.node_id: n.node for n in nodes}
    for n in got:  # the score is metadata, not part of the text a second reranker or the LLM sees
        for mode in (MetadataMode.EMBED, MetadataMode.LLM):
            assert n.node.get_content(metadata_mode=mode) == by_id[n.node.node_id].get_content(metadata_mode=mode)
    plain = RagRetrievalRerank(model=ranker, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    assert all("retrieval_score" not in n.node.metadata for n in plain)


def test_async_path_equals_sync(ranker):
    rerank = RagRetrievalRerank(model=ranker, top_n=5)
    nodes = scored(make_nodes())

    async def run_all():
        return await asyncio.gather(*(rerank.apostprocess_nodes(nodes, query_str=q) for q in [QUERY, "paris"] * 4))

    got = [ids_and_scores(r) for r in asyncio.run(run_all())]
    assert got == [ids_and_scores(rerank.postprocess_nodes(nodes, query_str=q)) for q in [QUERY, "paris"] * 4]


class RerankEvents(BaseEventHandler):
    """Collects LlamaIndex's rerank instrumentation events."""

    events: list = []

    @classmethod
    def class_name(cls) -> str:
        return "RerankEvents"

    def handle(self, event, **kwargs) -> None:
        if isinstance(event, (ReRankStartEvent, ReRankEndEvent)):
            self.events.append(event)


@pytest.fixture
def rerank_events():
    handler = RerankEvents(events=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler.events
    root.event_handlers.remove(handler)


@pytest.mark.parametrize("run_async", [False, True])
def test_rerank_instrumentation_events(ranker, rerank_events, run_async):
    rerank = RagRetrievalRerank(model=ranker, top_n=3)
    nodes = scored(make_nodes())
    if run_async:
        got = asyncio.run(rerank.apostprocess_nodes(nodes, query_str=QUERY))
    else:
        got = rerank.postprocess_nodes(nodes, query_str=QUERY)
    start, end = rerank_events
    assert isinstance(start, ReRankStartEvent) and isinstance(end, ReRankEndEvent)
    assert start.query.query_str == QUERY and start.top_n == 3 and len(start.nodes) == len(TEXTS)
    assert start.model_name == ranker.model_name_or_path
    assert ids_and_scores(end.nodes) == ids_and_scores(got)


def test_empty_inputs(ranker):
    rerank = RagRetrievalRerank(model=ranker, top_n=None)
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    assert asyncio.run(rerank.apostprocess_nodes([], query_str=QUERY)) == []
    got = rerank.postprocess_nodes(scored([TextNode(text=""), TextNode(text=TEXTS[0])]), query_str=QUERY)
    by_text = {n.node.get_content(): n.score for n in got}
    # scored with the list it came in (a listwise model scores a document against the others)
    assert by_text[""] == pytest.approx(ranker.compute_score([(QUERY, ""), (QUERY, TEXTS[0])])[0], abs=1e-6)


def test_duplicate_nodes_keep_their_own_entry(ranker):
    node = TextNode(text=TEXTS[0])
    nodes = [NodeWithScore(node=node, score=0.9), NodeWithScore(node=TextNode(text=TEXTS[1])), NodeWithScore(node=node)]
    got = RagRetrievalRerank(model=ranker, top_n=None, keep_retrieval_score=True).postprocess_nodes(
        nodes, query_str=QUERY
    )
    copies = [n for n in got if n.node.node_id == node.node_id]
    assert [n.node.metadata["retrieval_score"] for n in copies] == [0.9, None]  # input order, own metadata
    assert copies[0].score == copies[1].score


def test_missing_query_is_an_error(ranker):
    with pytest.raises(ValueError, match="query"):
        RagRetrievalRerank(model=ranker).postprocess_nodes(scored(make_nodes()))
    assert RagRetrievalRerank(model=ranker, top_n=1).postprocess_nodes(
        scored(make_nodes()), query_bundle=QueryBundle(QUERY)
    )


@pytest.mark.parametrize("top_n", [0, -2])
def test_top_n_must_be_positive(bert_cross_encoder, top_n):
    with pytest.raises(ValueError, match="top_n"):
        RagRetrievalRerank(model=bert_cross_encoder, top_n=top_n)


@pytest.mark.parametrize(
    "field, value",
    [("top_n", 1.5), ("score_threshold", "high"), ("score_threshold", float("nan")), ("model", 42), ("topn", 3)],
)
def test_validation_errors_name_the_field(bert_cross_encoder, field, value):
    with pytest.raises(ValidationError, match=field):
        RagRetrievalRerank(**{"model": bert_cross_encoder, field: value})


def test_one_loaded_model_serves_both_frameworks(bert_cross_encoder):
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from rag_retrieval_integrations.langchain import RagRetrievalReranker

    shared = Reranker(bert_cross_encoder)
    compressor = RagRetrievalReranker(model=shared, top_n=None)
    rerank = RagRetrievalRerank(model=shared, top_n=None)
    assert compressor.reranker is rerank.reranker is shared
    lc = compressor.compress_documents([Document(t) for t in TEXTS], QUERY)
    li = rerank.postprocess_nodes(scored([TextNode(text=t) for t in TEXTS]), query_str=QUERY)
    assert [(d.page_content, d.metadata["relevance_score"]) for d in lc] == [
        (n.node.get_content(), n.score) for n in li
    ]
    assert rerank.to_dict()["model"] == str(bert_cross_encoder) and rerank.class_name() == "RagRetrievalRerank"
