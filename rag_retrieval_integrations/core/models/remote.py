"""``RemoteReranker``: a model served by ``rag-retrieval-serve``, behind the ``Reranker`` API.

It is a :class:`~.ranker.Ranker`: it fetches raw scores from the server's ``POST /v1/rerank``
(``raw_scores: true``) and the ranker base does everything else (validation, duplicates,
``normalize``, sorting, ``top_k``) with the code a local model uses, so ``rank``/``rank_many``/
``compute_score`` give a local model's results, and the LangChain and LlamaIndex wrappers take it
as their ``model``. Its async methods use a native async HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import numpy as np

from ..options import check_positive_int
from ..text.truncation import TruncationStats
from .ranker import Ranker

_T = TypeVar("_T")


class RemoteRerankerError(RuntimeError):
    """The server refused a request or could not be reached; ``status`` is the HTTP status (or None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("RemoteReranker needs httpx: pip install 'rag-retrieval[remote]'") from err
    return httpx


class RemoteReranker(Ranker):
    """A ranking model served over HTTP by ``rag-retrieval-serve``, used like a local ``Reranker``.

    Args:
        url: the server's base URL, e.g. ``"http://127.0.0.1:8000"``.
        api_key: sent as ``Authorization: Bearer <api_key>`` (the server's ``RAG_RETRIEVAL_API_KEY``).
        model: the served model's name, sent as ``model`` so that a server serving another
            model refuses the request; ``None`` sends none.
        timeout: seconds per HTTP request.
        documents_per_request: the most documents one request carries (the server's
            ``--max-documents``); a longer list goes as several requests, scored concurrently.
        max_concurrency: requests in flight at once from one call (``rank_many`` of many
            queries sends one request per query, which the server micro-batches).
        retries: how often a 503 (server busy) is retried, after its ``Retry-After``.

    ``batch_size`` is accepted and not used (the server's model batches); other per-call model
    options are refused. Thread-safe, and its async methods (``arank``, ``arank_many``,
    ``acompute_score``, ``ascore_pairs``) use a native async HTTP client.
    """

    model_type = "remote"
    batch_size = 1  # unused: the server batches
    max_length = None  # the server's model has its own

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 60.0,
        documents_per_request: int = 1000,
        max_concurrency: int = 8,
        retries: int = 3,
    ) -> None:
        _httpx()
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise ValueError(f"timeout must be a positive, finite number of seconds, got {timeout!r}")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
        self.url = url.rstrip("/")
        self.model_name_or_path = self.url
        self.served_model = model
        self.documents_per_request = check_positive_int(documents_per_request, "documents_per_request")
        self.max_concurrency = check_positive_int(max_concurrency, "max_concurrency")
        self.retries = retries
        self.truncation_totals = TruncationStats()  # the server's model truncates; nothing is counted here
        headers = {"Authorization": _authorization(api_key)} if api_key else {}
        self.timeout = float(timeout)
        self._client_options = {"base_url": self.url, "headers": headers, "timeout": timeout}
        self._loop: asyncio.AbstractEventLoop | None = None  # where the sync methods run, started on first use
        self._loop_lock = threading.Lock()
        self._client: Any = None

    def __repr__(self) -> str:
        return f"RemoteReranker({self.url!r}, model={self.served_model!r})"

    def close(self) -> None:
        """Close the connections of the sync methods and stop their event loop thread."""
        with self._loop_lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), loop).result()
            loop.call_soon_threadsafe(loop.stop)

    # ---- requests ----------------------------------------------------------------------------

    def _chunks(self, queries: list[str], docs: list[str]) -> list[tuple[str, np.ndarray]]:
        """Requests to send: (query, positions of its documents), at most ``documents_per_request`` each."""
        by_query: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            by_query.setdefault(q, []).append(i)
        n = self.documents_per_request
        return [(q, np.asarray(rows[s : s + n])) for q, rows in by_query.items() for s in range(0, len(rows), n)]

    def _body(self, query: str, docs: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "documents": docs, "raw_scores": True}
        if self.served_model is not None:
            body["model"] = self.served_model
        return body

    def _read(self, response: Any, n_docs: int) -> np.ndarray | float:
        """Raw scores in request order from a 200; the seconds to wait from a retryable 503."""
        if response.status_code == 503 and "retry-after" in response.headers:
            with contextlib.suppress(ValueError):
                return min(float(response.headers["retry-after"]), 30.0)
        if response.status_code != 200:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:500]
            raise RemoteRerankerError(
                f"{self.url}/v1/rerank answered {response.status_code}: {message}", response.status_code
            )
        return read_raw_scores(response, n_docs, f"{self.url}/v1/rerank")

    async def _post(self, client: Any, query: str, docs: list[str]) -> np.ndarray:
        httpx = _httpx()
        for attempt in range(self.retries + 1):
            try:
                response = await client.post("/v1/rerank", json=self._body(query, docs))
            except httpx.TimeoutException as err:
                raise RemoteRerankerError(
                    f"{self.url}/v1/rerank timed out after {self.timeout:g} s ({type(err).__name__}); raise timeout= "
                    "or send fewer documents per request"
                ) from err
            except httpx.HTTPError as err:
                raise RemoteRerankerError(f"cannot reach {self.url}: {str(err) or type(err).__name__}") from err
            out = self._read(response, len(docs))
            if isinstance(out, np.ndarray):
                return out
            if attempt < self.retries:
                await asyncio.sleep(out)
        raise RemoteRerankerError(f"{self.url} stayed busy (503) through {self.retries} retries", 503)

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on this client's own event loop thread and wait for it: the sync methods
        share the async code, and work from any thread, inside a running event loop (a notebook) too."""
        with self._loop_lock:
            if self._loop is None:
                self._client = _httpx().AsyncClient(**self._client_options)  # kept: its connections are reused
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="rag-retrieval-remote", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # ---- what Ranker calls ------------------------------------------------------------------

    def _score(self, queries: list[str], docs: list[str], batch_size: int) -> np.ndarray:
        """Raw scores over this client's own event loop (the sync methods share the async code)."""
        return self._run(self._requests(queries, docs, lambda: self._client))

    async def _ascore(self, queries: list[str], docs: list[str], batch_size: int) -> np.ndarray:
        """Raw scores on the caller's event loop, with a client of that loop (closed at the end:
        an AsyncClient cannot outlive the event loop it ran on)."""
        async with _httpx().AsyncClient(**self._client_options) as own:
            return await self._requests(queries, docs, lambda: own)

    async def _requests(self, queries: list[str], docs: list[str], client: Callable[[], Any]) -> np.ndarray:
        """One request per query (and ``documents_per_request``), ``max_concurrency`` in flight."""
        chunks = self._chunks(queries, docs)
        limit = asyncio.Semaphore(self.max_concurrency)

        async def post(chunk: tuple[str, np.ndarray]) -> np.ndarray:
            async with limit:
                return await self._post(client(), chunk[0], [docs[i] for i in chunk[1]])

        parts = await asyncio.gather(*(post(c) for c in chunks))
        return _scatter(len(docs), chunks, list(parts))


def _authorization(api_key: Any) -> bytes:
    """The ``Authorization`` header's value, as bytes: HTTP headers are latin-1, which is what the
    server decodes them as, so a key it can hold is sent as such and any other is refused here."""
    if not isinstance(api_key, str):
        raise TypeError(f"api_key must be a str, got {type(api_key).__name__}")
    if api_key != api_key.strip() or any(c in api_key for c in "\r\n\0"):
        raise ValueError("api_key has leading or trailing whitespace or a line break; pass the key alone")
    try:
        return f"Bearer {api_key}".encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("api_key holds characters that an HTTP header cannot carry (only latin-1 ones can)") from None


def read_raw_scores(response: Any, n_docs: int, where: str) -> np.ndarray:
    """The raw scores of a 200 answer to a rerank request of ``n_docs`` documents, in request order.

    The answer is checked, not trusted: a JSON object whose ``results`` hold each sent index once
    (``0 .. n_docs - 1``) with a finite ``relevance_score``. Anything else (a body that is not JSON,
    a missing key, an index repeated or out of range, a null or NaN score) is a
    :class:`RemoteRerankerError` naming ``where`` and what was wrong, never made-up scores.
    """

    def bad(what: str) -> RemoteRerankerError:
        return RemoteRerankerError(f"{where} answered 200 with {what}", response.status_code)

    try:
        body = response.json()
    except ValueError:
        shown = response.text[:80]
        raise bad(f"a body that is not JSON ({shown!r})" if shown else "an empty body") from None
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise bad("no 'results' list")
    if len(results) != n_docs:
        raise bad(f"{len(results)} results for {n_docs} documents")
    raw = np.full(n_docs, np.nan, dtype=np.float64)
    seen = np.zeros(n_docs, dtype=bool)
    for i, result in enumerate(results):
        index = result.get("index") if isinstance(result, dict) else None
        score = result.get("relevance_score") if isinstance(result, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_docs:
            raise bad(f"results[{i}].index = {index!r}, not a document index in 0..{n_docs - 1}")
        if seen[index]:
            raise bad(f"index {index} twice (results[{i}]); each document must be scored once")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise bad(f"results[{i}].relevance_score = {score!r}, not a finite number")
        seen[index] = True
        raw[index] = score
    return raw


def _scatter(n: int, chunks: list[tuple[str, np.ndarray]], parts: list[np.ndarray]) -> np.ndarray:
    """Each request's scores back at their pairs' positions."""
    scores = np.empty(n, dtype=np.float64)
    for (_, rows), part in zip(chunks, parts):
        scores[rows] = part
    return scores
