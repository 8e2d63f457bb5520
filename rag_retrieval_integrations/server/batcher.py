"""Micro-batching: requests that arrive close together are scored in one ``score_pairs`` pass.

One worker task owns the model. It takes the oldest waiting request, waits up to
``batch_wait_ms`` for more, and scores every pair it collected (at most ``max_batch_pairs``)
with a single ``score_pairs`` call in a one-thread executor, off the event loop: the model
scores one call at a time anyway (its lock), and on the CPU one forward pass already uses every
core, so one thread keeps the event loop free and costs nothing.

Scores come back raw and in input order; each request's own ``normalize`` and ``top_n`` are
applied by ``rank_from_raw``, the function ``Ranker.rank`` itself ends with, so requests with
different options share a pass and each is sorted once. The queue is first in, first out and bounded: a request never waits behind more
than the batches already queued before it, and a full queue is refused at once
(:class:`QueueFullError`, a 503 to the client) rather than left to time out.

Work nobody waits for is not done: a request whose caller timed out (504) or went away is
dropped from the queue, and a request larger than ``max_batch_pairs`` is scored in slices of that
many pairs and stops at the next slice once its caller is gone, so the requests behind it are
not held up by an answer no one will read.

A listwise model (``Ranker.listwise``: a document's score depends on the others of its list) is
given each request alone and whole: never merged with another request, never sliced.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.models.ranker import Ranker, one_score_per_pair, rank_from_raw
from ..core.results import RankedResults
from .metrics import ServerMetrics


class QueueFullError(RuntimeError):
    """The batcher's queue holds ``max_queue`` requests already; the client should retry later."""


@dataclass
class _RankJob:
    query: str
    docs: list[str]
    normalize: bool
    top_n: int | None
    future: asyncio.Future[RankedResults]
    enqueued: float = field(default_factory=time.perf_counter)
    # set (on the event loop) once the caller has gone; read by the model's thread between slices
    abandoned: threading.Event = field(default_factory=threading.Event)


class _Abandoned(Exception):
    """Raised on the model's thread when every caller of a batch has gone mid-way."""


@dataclass
class _CallJob:
    """Work that needs the model but is not a ranking (embeddings): run alone, in queue order."""

    call: Callable[[], Any]
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects ranking requests for ``batch_wait_ms`` and scores them together.

    Args:
        model: the loaded ranker; only this batcher's worker thread calls it.
        batch_wait_ms: how long the oldest request waits for company; 0 scores what is
            already queued without waiting.
        max_batch_pairs: the most (query, document) pairs in one ``score_pairs`` call; a single
            request above it is scored alone. The core splits a pass into length-sorted,
            token-budgeted forward passes, so this bounds the latency of one pass, not memory.
        max_queue: the most requests waiting (not yet being scored); beyond it
            :meth:`rank` raises :class:`QueueFullError`.
        metrics: where batch sizes and queue waits are recorded.
    """

    def __init__(
        self,
        model: Ranker,
        *,
        batch_wait_ms: float,
        max_batch_pairs: int,
        max_queue: int,
        metrics: ServerMetrics,
    ) -> None:
        self.model = model
        self.batch_wait = batch_wait_ms / 1000.0
        self.max_batch_pairs = max_batch_pairs
        self.max_queue = max_queue
        self.metrics = metrics
        self._queue: deque[_RankJob | _CallJob] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-retrieval-model")
        self._worker: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="rag-retrieval-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still queued get a ``RuntimeError``."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def queued(self) -> int:
        """Requests waiting to be scored."""
        return len(self._queue)

    # ---- submitting ------------------------------------------------------------------------

    async def rank(self, query: str, docs: list[str], *, normalize: bool, top_n: int | None) -> RankedResults:
        """``model.rank(query, docs, normalize=normalize, top_k=top_n)``, scored together with the
        requests that arrive within the batch window. Cancelling the caller (a client timeout)
        drops the request if it has not been scored yet."""
        future: asyncio.Future[RankedResults] = asyncio.get_running_loop().create_future()
        job = _RankJob(query, docs, normalize, top_n, future)
        future.add_done_callback(lambda f: job.abandoned.set() if f.cancelled() else None)
        self._put(job)
        return await future

    async def call(self, call: Callable[[], Any]) -> Any:
        """Run ``call()`` (work that needs the model, such as embedding) on the model's thread, in queue order."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_CallJob(call, future))
        return await future

    def _put(self, job: _RankJob | _CallJob) -> None:
        if self._worker is None or self._worker.done():
            raise RuntimeError("the batcher is not running (start() it on the server's event loop)")
        if len(self._queue) >= self.max_queue:
            raise QueueFullError(f"{len(self._queue)} requests are queued already (max_queue={self.max_queue})")
        self._queue.append(job)
        self.metrics.queue_depth.set(len(self._queue))
        self._arrived.set()

    # ---- the worker ------------------------------------------------------------------------

    async def _next(self) -> _RankJob | _CallJob:
        """The oldest request whose caller is still waiting."""
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            job = self._queue.popleft()
            self.metrics.queue_depth.set(len(self._queue))
            if not job.future.done():  # a caller that timed out or went away has cancelled its future
                return job

    async def _collect(self, first: _RankJob) -> list[_RankJob]:
        """``first`` and the ranking requests that arrive within the window, up to the pair budget."""
        batch, pairs = [first], len(first.docs)
        if self.model.listwise:  # its scores depend on the list: each request is ranked alone
            return batch
        deadline = time.perf_counter() + self.batch_wait
        while pairs < self.max_batch_pairs:
            if not self._queue:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
                continue
            job = self._queue[0]
            if job.future.done():
                self._queue.popleft()
                continue
            if not isinstance(job, _RankJob) or pairs + len(job.docs) > self.max_batch_pairs:
                break  # it goes first in the next batch: the queue stays in arrival order
            batch.append(self._queue.popleft())
            pairs += len(job.docs)
        self.metrics.queue_depth.set(len(self._queue))
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._next()
            if isinstance(job, _CallJob):
                self.metrics.queue_wait.observe(time.perf_counter() - job.enqueued)
                await _settle(job.future, loop.run_in_executor(self._executor, job.call))
                continue
            batch = await self._collect(job)
            now = time.perf_counter()
            for j in batch:
                self.metrics.queue_wait.observe(now - j.enqueued)
            self.metrics.batch_requests.observe(len(batch))
            self.metrics.batch_pairs.observe(sum(len(j.docs) for j in batch))
            try:
                ranked = await loop.run_in_executor(self._executor, self._rank_batch, batch)
            except _Abandoned:
                continue
            except Exception as err:  # one bad batch must not stop the worker: its callers get the error
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(err)
                continue
            for j, result in zip(batch, ranked):
                if not j.future.done():
                    j.future.set_result(result)

    def _rank_batch(self, batch: list[_RankJob]) -> list[RankedResults]:
        if len(batch) == 1 and len(batch[0].docs) > self.max_batch_pairs and not self.model.listwise:
            return [self._rank_in_slices(batch[0])]
        queries, docs = [j.query for j in batch for _ in j.docs], [d for j in batch for d in j.docs]
        raw = one_score_per_pair(self.model.score_pairs(queries, docs))  # a model set to several layers: its error
        bounds = np.cumsum([0] + [len(j.docs) for j in batch])
        return [
            rank_from_raw(j.query, j.docs, raw[bounds[i] : bounds[i + 1]], j.normalize, j.top_n)
            for i, j in enumerate(batch)
        ]

    def _rank_in_slices(self, job: _RankJob) -> RankedResults:
        """One request above ``max_batch_pairs``, scored that many pairs at a time, given up between
        slices once its caller has gone (raw scores are per pair, so slicing leaves them as they are,
        up to the last bits of differently padded forward passes)."""
        raw = np.empty(len(job.docs), dtype=np.float64)
        for start in range(0, len(job.docs), self.max_batch_pairs):
            if job.abandoned.is_set():
                raise _Abandoned
            part = job.docs[start : start + self.max_batch_pairs]
            raw[start : start + len(part)] = one_score_per_pair(self.model.score_pairs([job.query] * len(part), part))
        return rank_from_raw(job.query, job.docs, raw, job.normalize, job.top_n)


async def _settle(future: asyncio.Future[Any], work: asyncio.Future[Any]) -> None:
    """Copy the outcome of ``work`` into ``future`` unless its caller has gone."""
    try:
        result = await work
    except Exception as err:
        if not future.done():
            future.set_exception(err)
        return
    if not future.done():
        future.set_result(result)
