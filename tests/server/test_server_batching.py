"""Micro-batching and limits under concurrent load: batched answers equal answers alone, a full
queue is a 503 with Retry-After, a slow model times out with a 504, nothing hangs."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi")

import httpx
from kit.serving import TIMEOUT, Gate, serve
from kit.texts import QUERIES, TEXTS

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.server import MicroBatcher, QueueFullError
from rag_retrieval_integrations.server.metrics import ServerMetrics


@pytest.fixture(scope="module")
def model(bert_cross_encoder):
    return Reranker(bert_cross_encoder)


def requests_of(n: int) -> list[dict]:
    """``n`` rerank bodies: different queries, document lists, top_n and raw/normalized scores."""
    return [
        {
            "query": QUERIES[i % len(QUERIES)],
            "documents": TEXTS[i % 3 :] + TEXTS[: i % 3],
            "top_n": None if i % 2 else 1 + i % 5,
            "raw_scores": i % 3 == 0,
        }
        for i in range(n)
    ]


def direct(model, body: dict) -> list[tuple[int, float]]:
    ranked = model.rank(body["query"], body["documents"], top_k=body["top_n"], normalize=not body["raw_scores"])
    return [(r.index, r.score) for r in ranked]


def assert_same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    """Same documents in the same order, scores equal up to float32 rounding (a row of a batch padded
    to another length can differ from the same row alone in the last bits)."""
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6)


async def post_all(url: str, bodies: list[dict], path: str = "/v1/rerank") -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
        return await asyncio.gather(*(client.post(path, json=b) for b in bodies))


def test_concurrent_requests_share_passes_and_equal_each_request_alone(model):
    bodies = requests_of(24)
    with serve(model, batch_wait_ms=100, max_batch_pairs=10_000) as url:
        responses = asyncio.run(post_all(url, bodies))
        metrics = httpx.get(url + "/metrics", timeout=TIMEOUT).text
    for body, response in zip(bodies, responses):
        assert response.status_code == 200
        assert_same([(r["index"], r["relevance_score"]) for r in response.json()["results"]], direct(model, body))
    passes = next(line for line in metrics.splitlines() if line.startswith("rag_retrieval_batch_requests_count"))
    assert float(passes.split()[-1]) < len(bodies)  # some requests were scored together


def test_the_batcher_alone_equals_rank_per_request_with_every_option_mixed(model):
    bodies = requests_of(12)

    async def run():
        batcher = MicroBatcher(model, batch_wait_ms=50, max_batch_pairs=10_000, max_queue=100, metrics=ServerMetrics())
        batcher.start()
        try:
            return await asyncio.gather(
                *(
                    batcher.rank(b["query"], b["documents"], normalize=not b["raw_scores"], top_n=b["top_n"])
                    for b in bodies
                )
            )
        finally:
            await batcher.stop()

    for body, ranked in zip(bodies, asyncio.run(run())):
        assert_same([(r.index, r.score) for r in ranked], direct(model, body))
        assert [r.rank for r in ranked] == list(range(1, len(ranked) + 1))


def test_the_pair_budget_splits_batches_and_keeps_arrival_order(model):
    """A request larger than the budget is scored alone; the small ones behind it still get their turn."""
    big = {"query": QUERIES[0], "documents": TEXTS * 5, "top_n": None, "raw_scores": True}
    bodies = [big, *requests_of(6)]
    with serve(model, batch_wait_ms=50, max_batch_pairs=16) as url:
        responses = asyncio.run(post_all(url, bodies))
    for body, response in zip(bodies, responses):
        assert_same([(r["index"], r["relevance_score"]) for r in response.json()["results"]], direct(model, body))


def test_a_full_queue_is_503_with_retry_after_and_the_queued_requests_complete(bert_cross_encoder):
    slow = Reranker(bert_cross_encoder)
    gate = Gate(slow)
    body = {"query": QUERIES[0], "documents": TEXTS}

    async def run(url: str):
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
            first = asyncio.ensure_future(client.post("/v1/rerank", json=body))  # held in the model
            assert await asyncio.to_thread(gate.entered.wait, TIMEOUT)
            queued = [asyncio.ensure_future(client.post("/v1/rerank", json=body)) for _ in range(2)]
            while httpx.get(url + "/health", timeout=TIMEOUT).json()["queued"] < 2:
                await asyncio.sleep(0.01)
            refused = await client.post("/v1/rerank", json=body)
            tei_refused = await client.post("/rerank", json={"query": "q", "texts": ["d"]})
            gate.open()
            return refused, tei_refused, await asyncio.gather(first, *queued)

    with serve(slow, batch_wait_ms=0, max_queue=2, retry_after_s=3) as url:
        refused, tei_refused, done = asyncio.run(run(url))
        after = httpx.post(url + "/v1/rerank", json=body, timeout=TIMEOUT)
    for r in (refused, tei_refused):
        assert r.status_code == 503 and r.headers["retry-after"] == "3"
        assert r.json()["error"]["type"] == "overloaded"
    assert [r.status_code for r in done] == [200, 200, 200]
    assert after.status_code == 200


def test_a_request_past_its_timeout_is_504_and_the_server_recovers(bert_cross_encoder):
    slow = Reranker(bert_cross_encoder)
    gate = Gate(slow)
    body = {"query": QUERIES[0], "documents": TEXTS}
    with serve(slow, request_timeout_s=0.3) as url:
        first = httpx.post(url + "/v1/rerank", json=body, timeout=TIMEOUT)  # held in the model past its timeout
        behind = httpx.post(url + "/rerank", json={"query": "q", "texts": ["d"]}, timeout=TIMEOUT)  # never scored
        gate.open()
        after = httpx.post(url + "/v1/rerank", json=body, timeout=TIMEOUT)
    assert first.status_code == 504 and first.json()["error"]["type"] == "timeout"
    assert behind.status_code == 504
    assert after.status_code == 200


def test_the_batcher_refuses_past_max_queue_and_when_not_started(model):
    async def run():
        batcher = MicroBatcher(model, batch_wait_ms=0, max_batch_pairs=10, max_queue=1, metrics=ServerMetrics())
        with pytest.raises(RuntimeError, match="not running"):
            await batcher.rank("q", ["d"], normalize=False, top_n=None)
        batcher.start()
        gate = Gate(model)
        try:
            first = asyncio.ensure_future(batcher.rank("q", ["d"], normalize=False, top_n=None))
            assert await asyncio.to_thread(gate.entered.wait, TIMEOUT)
            second = asyncio.ensure_future(batcher.rank("q", ["e"], normalize=False, top_n=None))
            await asyncio.sleep(0)
            with pytest.raises(QueueFullError, match="max_queue=1"):
                await batcher.rank("q", ["f"], normalize=False, top_n=None)
            gate.open()
            return await asyncio.gather(first, second)
        finally:
            del model._score  # the instance's wrapper: back to the class's method
            await batcher.stop()

    first, second = asyncio.run(run())
    assert first.scores == model.rank("q", ["d"]).scores and second.texts == ["e"]


class Slow:
    """Makes each scoring call of a model take ``seconds_per_pair`` per pair (a big model on a CPU)."""

    def __init__(self, model, seconds_per_pair: float) -> None:
        import functools
        import time

        original = model._score
        self.pairs_scored = 0

        @functools.wraps(original)
        def slow(queries, docs, batch_size, **kwargs):
            time.sleep(seconds_per_pair * len(docs))
            self.pairs_scored += len(docs)
            return original(queries, docs, batch_size, **kwargs)

        model._score = slow


def test_a_small_request_after_a_timed_out_large_one_is_answered_in_its_own_budget(bert_cross_encoder):
    """The large request (4 s of scoring) times out at 1 s and is given up at its next slice of
    max_batch_pairs pairs; the small one behind it is scored within its own 1 s."""
    slow_model = Reranker(bert_cross_encoder)
    slow = Slow(slow_model, seconds_per_pair=0.02)
    large = {"query": QUERIES[0], "documents": [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(200)]}
    with serve(slow_model, request_timeout_s=1.0, max_batch_pairs=10, max_documents=500) as url:
        first = httpx.post(url + "/v1/rerank", json=large, timeout=TIMEOUT)
        small = httpx.post(url + "/v1/rerank", json={"query": QUERIES[0], "documents": TEXTS[:2]}, timeout=TIMEOUT)
    assert first.status_code == 504
    assert small.status_code == 200, small.text
    assert slow.pairs_scored < 100  # the large request was not scored to its end


def test_a_request_whose_client_left_is_not_scored_to_its_end(bert_cross_encoder):
    import time

    slow_model = Reranker(bert_cross_encoder)
    slow = Slow(slow_model, seconds_per_pair=0.02)
    large = {"query": QUERIES[0], "documents": [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(200)]}
    with serve(slow_model, request_timeout_s=30.0, max_batch_pairs=10, max_documents=500) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/rerank", json=large, timeout=0.5)  # the client gives up and closes
        started = time.perf_counter()
        small = httpx.post(url + "/v1/rerank", json={"query": QUERIES[0], "documents": TEXTS[:2]}, timeout=TIMEOUT)
        waited = time.perf_counter() - started
    assert small.status_code == 200 and waited < 1.5, waited
    assert slow.pairs_scored < 100


def test_a_model_scoring_several_layers_per_pair_gets_the_ranking_error(decoder_llm):
    """score_pairs gives one column per cutoff layer; the batcher must say so as rank does, not
    build a ranking from a 2-D array."""
    model = Reranker(decoder_llm, model_type="llm-layerwise", cutoff_layers=[1, 2])

    async def run():
        batcher = MicroBatcher(model, batch_wait_ms=0, max_batch_pairs=10, max_queue=4, metrics=ServerMetrics())
        batcher.start()
        try:
            return await batcher.rank("q", ["a", "b"], normalize=False, top_n=None)
        finally:
            await batcher.stop()

    with pytest.raises(ValueError, match="ranking needs one score per document"):
        asyncio.run(run())


def test_a_listwise_model_ranks_each_request_alone_and_whole(decoder_llm):
    """A listwise model's scores depend on the list: merging two requests of one query, or slicing one,
    would rank other lists than the callers sent."""
    listwise = Reranker(decoder_llm, model_type="llm-listwise", method="first", window_size=3)
    bodies = [
        {"query": QUERIES[0], "documents": TEXTS[:4], "top_n": None, "raw_scores": True},
        {"query": QUERIES[0], "documents": TEXTS[2:5], "top_n": None, "raw_scores": True},
        {"query": QUERIES[0], "documents": TEXTS[1:3], "top_n": None, "raw_scores": True},
    ]

    async def run():
        batcher = MicroBatcher(listwise, batch_wait_ms=200, max_batch_pairs=2, max_queue=100, metrics=ServerMetrics())
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.rank(b["query"], b["documents"], normalize=False, top_n=None) for b in bodies)
            )
        finally:
            await batcher.stop()

    for body, ranked in zip(bodies, asyncio.run(run())):
        assert_same([(r.index, r.score) for r in ranked], direct(listwise, body))
        assert [r.score for r in ranked] == [1 / k for k in range(1, len(body["documents"]) + 1)]
