"""The LangChain reranker as a user sees it: inside a real ContextualCompressionRetriever."""

from __future__ import annotations

import asyncio
import copy
import math
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_classic")

from kit.texts import QUERIES, QUERY, TEXTS
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ValidationError

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.langchain import RagRetrievalEmbeddings, RagRetrievalReranker


def documents() -> list[Document]:
    return [Document(text, id=f"doc-{i}", metadata={"i": i}) for i, text in enumerate(TEXTS)]


@pytest.fixture(scope="module", params=["bert_cross_encoder", "decoder_llm", "listwise"])
def ranker(request):
    """One loaded model per checkpoint kind, shared by every wrapper of the module (``listwise``: the
    tiny chat LLM ranking listwise, FIRST-style)."""
    if request.param == "listwise":
        return Reranker(request.getfixturevalue("decoder_llm"), model_type="llm-listwise", method="first")
    return Reranker(request.getfixturevalue(request.param))


@pytest.fixture(scope="module")
def vector_store(bi_encoder):
    return InMemoryVectorStore.from_documents(documents(), RagRetrievalEmbeddings(model=bi_encoder))


def expected(ranker, query: str, docs: list[Document], **options) -> list[tuple[str | None, float]]:
    ranked = ranker.rank(query, [d.page_content for d in docs], normalize=options.get("normalize", False))
    keep = [(docs[r.index].id, r.score) for r in ranked if r.score >= options.get("score_threshold", -math.inf)]
    return keep[: options.get("top_n")]


def ids_and_scores(docs) -> list[tuple[str | None, float]]:
    return [(d.id, d.metadata["relevance_score"]) for d in docs]


def test_compression_retriever_returns_top_n_in_score_order(ranker, vector_store):
    base = vector_store.as_retriever(search_kwargs={"k": 6})
    retriever = ContextualCompressionRetriever(
        base_compressor=RagRetrievalReranker(model=ranker, top_n=3), base_retriever=base
    )
    got = retriever.invoke(QUERY)
    want = expected(ranker, QUERY, base.invoke(QUERY), top_n=3)
    assert [d.id for d in got] == [i for i, _ in want]
    assert [d.metadata["relevance_score"] for d in got] == pytest.approx([s for _, s in want], abs=1e-6)
    assert all(d.page_content == TEXTS[d.metadata["i"]] for d in got)
    assert ids_and_scores(asyncio.run(retriever.ainvoke(QUERY))) == ids_and_scores(got)


def test_loading_from_a_path_equals_the_shared_model(bert_cross_encoder):
    shared = Reranker(bert_cross_encoder, max_length=64)
    own = RagRetrievalReranker(model=str(bert_cross_encoder), model_kwargs={"max_length": 64}, top_n=None)
    got = own.compress_documents(documents(), QUERY)
    assert ids_and_scores(got) == expected(shared, QUERY, documents())
    assert own.reranker is not shared and own.reranker.max_length == 64
    assert own.model_dump()["model"] == str(bert_cross_encoder)


@pytest.mark.parametrize("checkpoint", ["bert_cross_encoder", "bi_encoder", "decoder_llm"])
def test_threads_get_the_results_of_sequential_calls(checkpoint, request):
    kwargs = {"long_doc": "split-max", "max_length": 24, "overlap": 4} if checkpoint == "bi_encoder" else {}
    compressor = RagRetrievalReranker(model=request.getfixturevalue(checkpoint), model_kwargs=kwargs, top_n=None)
    docs = [Document(text * (1 + i % 3)) for i, text in enumerate(TEXTS)]  # varied lengths, varied batches
    calls = [QUERIES[i % len(QUERIES)] for i in range(64)]
    sequential = {q: ids_and_scores(compressor.compress_documents(docs, q)) for q in QUERIES}
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda q: ids_and_scores(compressor.compress_documents(docs, q)), calls))
    assert threaded == [sequential[q] for q in calls]


def test_concurrent_async_calls_equal_sync_calls(ranker):
    compressor = RagRetrievalReranker(model=ranker, top_n=4)

    async def run_all():
        return await asyncio.gather(*(compressor.acompress_documents(documents(), q) for q in QUERIES * 2))

    got = [ids_and_scores(docs) for docs in asyncio.run(run_all())]
    assert got == [ids_and_scores(compressor.compress_documents(documents(), q)) for q in QUERIES * 2]


def test_callers_documents_are_not_changed(ranker):
    docs = documents()
    before = copy.deepcopy(docs)
    got = RagRetrievalReranker(model=ranker, top_n=None).compress_documents(docs, QUERY)
    assert docs == before
    assert all("relevance_score" not in d.metadata for d in docs)
    assert not any(g is d or g.metadata is d.metadata for g in got for d in docs)
    assert sorted(d.id for d in got) == sorted(d.id for d in docs)


def test_duplicates_keep_their_own_entry_and_ties_keep_input_order(ranker):
    docs = [Document(TEXTS[0], metadata={"copy": 1}), Document(TEXTS[1]), Document(TEXTS[0], metadata={"copy": 2})]
    got = RagRetrievalReranker(model=ranker, top_n=None).compress_documents(docs, QUERY)
    assert len(got) == 3
    copies = [d for d in got if d.page_content == TEXTS[0]]
    assert [d.metadata["copy"] for d in copies] == [1, 2]
    assert copies[0].metadata["relevance_score"] == copies[1].metadata["relevance_score"]


def test_normalize_and_score_threshold_drop_exactly_what_is_below(ranker):
    normalized = [s for _, s in expected(ranker, QUERY, documents(), normalize=True)]
    assert all(0 < s < 1 for s in normalized)
    threshold = normalized[4]  # five documents score at least this
    compressor = RagRetrievalReranker(model=ranker, top_n=None, normalize=True, score_threshold=threshold)
    got = compressor.compress_documents(documents(), QUERY)
    assert ids_and_scores(got) == expected(ranker, QUERY, documents(), normalize=True, score_threshold=threshold)
    assert len(got) == 5
    compressor = RagRetrievalReranker(model=ranker, top_n=2, normalize=True, score_threshold=threshold)
    assert len(compressor.compress_documents(documents(), QUERY)) == 2


def test_empty_inputs(ranker):
    compressor = RagRetrievalReranker(model=ranker, top_n=None)
    assert compressor.compress_documents([], QUERY) == []
    assert asyncio.run(compressor.acompress_documents([], QUERY)) == []
    got = compressor.compress_documents([Document(""), Document(TEXTS[0])], QUERY)
    by_text = {d.page_content: d.metadata["relevance_score"] for d in got}
    # scored with the list it came in (a listwise model scores a document against the others)
    assert by_text[""] == pytest.approx(ranker.compute_score([(QUERY, ""), (QUERY, TEXTS[0])])[0], abs=1e-6)


def test_callbacks_are_accepted(ranker, vector_store):
    class Recorder(BaseCallbackHandler):
        def __init__(self):
            self.ended = 0

        def on_retriever_end(self, documents, **kwargs):
            self.ended += 1

    recorder = Recorder()
    compressor = RagRetrievalReranker(model=ranker)
    retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=vector_store.as_retriever())
    assert len(retriever.invoke(QUERY, config={"callbacks": [recorder]})) == 3
    assert recorder.ended == 2  # the outer retriever and the vector store's
    assert len(compressor.compress_documents(documents(), QUERY, callbacks=[recorder])) == 3


@pytest.mark.parametrize("top_n", [0, -1])
def test_top_n_must_be_positive(bert_cross_encoder, top_n):
    with pytest.raises(ValueError, match="top_n"):
        RagRetrievalReranker(model=bert_cross_encoder, top_n=top_n)


@pytest.mark.parametrize(
    "field, value",
    [
        ("top_n", "three"),
        ("top_n", True),
        ("score_threshold", "high"),
        ("score_threshold", float("nan")),  # compared false with every score: all documents dropped
        ("score_threshold", float("inf")),
        ("batch_size", 0),
        ("model", 42),
        ("topn", 3),
    ],
)
def test_validation_errors_name_the_field(bert_cross_encoder, field, value):
    kwargs = {"model": bert_cross_encoder, field: value}
    with pytest.raises(ValidationError, match=field):
        RagRetrievalReranker(**kwargs)


def test_options_that_a_loaded_model_would_ignore_are_rejected(ranker):
    with pytest.raises(ValueError, match="model_kwargs"):
        RagRetrievalReranker(model=ranker, model_kwargs={"max_length": 16})
    with pytest.raises(ValueError, match="model_type"):
        RagRetrievalReranker(model=ranker, model_type="embedding")


def test_bad_documents_and_query(ranker):
    compressor = RagRetrievalReranker(model=ranker)
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        compressor.compress_documents([Document("a"), "b"], QUERY)
    with pytest.raises(TypeError, match="query"):
        compressor.compress_documents(documents(), None)
