"""The HTTP routes: any loaded ranking model behind the rerank and embedding APIs clients speak.

``create_app(model, config)`` wraps a model that is already loaded; the app itself loads
nothing and reads no file, whatever a request says. Every ranking goes through the
:class:`MicroBatcher` (so through ``model.score_pairs``), every embedding through the model's
own ``encode_queries``/``encode_documents`` on the same model thread.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ..core.indexes.mrl_vectors import prefix_vectors
from ..core.models.embedding import EmbeddingModel
from ..core.models.ranker import Ranker
from ..core.results import RankedResults
from ..core.text.inputs import check_docs, check_query
from .batcher import MicroBatcher, QueueFullError
from .limits import APIError, ServerConfig, check_api_key, check_count, read_body
from .metrics import ServerMetrics
from .schemas import (
    Embedding,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
    ErrorBody,
    RerankMeta,
    RerankRequest,
    RerankResponse,
    RerankResult,
    RerankResultDocument,
    RerankUsage,
    TEIRank,
    TEIRerankRequest,
)

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


def create_app(model: Ranker, config: ServerConfig) -> FastAPI:
    """A FastAPI app serving ``model``: ``/v1/rerank`` (and ``/v2/rerank``), ``/rerank`` (TEI),
    ``/v1/embeddings`` (embedding models only), ``/health`` and ``/metrics``.

    The app is stateless apart from its queue: replicas behind a load balancer need no
    coordination. Run it with any ASGI server (``rag-retrieval-serve`` uses uvicorn).
    """
    if not isinstance(model, Ranker):
        raise TypeError(f"model must be a loaded ranker (Reranker(...), or any Ranker), got {type(model).__name__}")
    if not isinstance(config, ServerConfig):
        raise TypeError(f"config must be a ServerConfig, got {type(config).__name__}")
    metrics = ServerMetrics()
    batcher = MicroBatcher(
        model,
        batch_wait_ms=config.batch_wait_ms,
        max_batch_pairs=config.max_batch_pairs,
        max_queue=config.max_queue,
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="rag-retrieval", version="1", lifespan=lifespan)
    app.state.model = model
    app.state.config = config
    app.state.metrics = metrics
    app.state.batcher = batcher
    served = _Endpoints(model, config, batcher, metrics)

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return error_response(err)

    routes = [
        ("/v1/rerank", served.cohere_rerank, RerankRequest, RerankResponse),
        ("/v2/rerank", served.cohere_rerank, RerankRequest, RerankResponse),  # the path of the Cohere SDK's ClientV2
        ("/rerank", served.tei_rerank, TEIRerankRequest, list[TEIRank]),
        ("/v1/embeddings", served.embeddings, EmbeddingsRequest, EmbeddingsResponse),
    ]
    for path, handler, _, answer in routes:
        app.add_api_route(path, handler, methods=["POST"], response_model=answer, response_model_exclude_none=True)
    app.add_api_route("/health", served.health, methods=["GET"])
    app.add_api_route("/metrics", served.prometheus, methods=["GET"])
    _document_request_bodies(app, {path: body for path, _, body, _ in routes})
    return app


def _document_request_bodies(app: FastAPI, bodies: dict[str, type[BaseModel]]) -> None:
    """Put the request bodies in the OpenAPI schema (``/docs``): the handlers read their bodies
    themselves (see ``limits.read_body``), so FastAPI cannot see them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for path, body in bodies.items():
                definition = body.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(definition.pop("$defs", {}))
                components[body.__name__] = definition
                ref = {"$ref": f"#/components/schemas/{body.__name__}"}
                schema["paths"][path]["post"]["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref}},
                }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_response(err: APIError) -> JSONResponse:
    body = ErrorBody(type=err.type, message=err.message, field=err.field, details=err.details)
    return JSONResponse({"error": body.model_dump(exclude_none=True)}, status_code=err.status, headers=err.headers)


class _Endpoints:
    """The route handlers, around one model, its batcher and its metrics."""

    def __init__(self, model: Ranker, config: ServerConfig, batcher: MicroBatcher, metrics: ServerMetrics) -> None:
        self.model = model
        self.config = config
        self.batcher = batcher
        self.metrics = metrics

    async def _answer(self, endpoint: str, request: Request, handle: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``handle`` under the API key check, the timeout and the metrics of ``endpoint``."""
        start = time.perf_counter()
        status = 200
        try:
            check_api_key(request, self.config.api_key)
            return await asyncio.wait_for(handle(), self.config.request_timeout_s)
        except APIError as err:
            status = err.status
            raise
        except QueueFullError as err:
            status = 503
            raise APIError(
                503,
                "overloaded",
                f"the server is busy ({err}); retry later",
                headers={"Retry-After": str(self.config.retry_after_s)},
            ) from None
        except asyncio.TimeoutError:
            status = 504
            raise APIError(
                504, "timeout", f"not answered within {self.config.request_timeout_s} s (request_timeout_s)"
            ) from None
        except Exception as err:
            status = 500
            logger.exception("%s failed", endpoint)
            raise APIError(500, "internal_error", f"{type(err).__name__}: {err}") from None
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

    def _check_model(self, name: str | None) -> None:
        if name is not None and name != self.config.served_model_name:
            raise APIError(
                404,
                "model_not_found",
                f"model {name!r} is not served here; this server serves {self.config.served_model_name!r}",
                field="model",
            )

    async def _rank(
        self, endpoint: str, request: Request, query: str, docs: list[str], normalize: bool, top_n: int | None
    ) -> RankedResults:
        field = "documents" if endpoint == "rerank" else "texts"
        check_count(len(docs), field, self.config.max_documents)
        # checked here, not in the batch: one request's bad text must not fail the requests batched with it
        for name, check in (("query", lambda: check_query(query)), (field, lambda: check_docs(docs, field))):
            try:
                check()
            except (TypeError, ValueError) as err:
                raise APIError(422, "invalid_request", str(err), field=name) from None
        ranked = await _unless_disconnected(request, self.batcher.rank(query, docs, normalize=normalize, top_n=top_n))
        self.metrics.pairs.labels(endpoint).inc(len(docs))
        return ranked

    # ---- routes ---------------------------------------------------------------------------

    async def cohere_rerank(self, request: Request) -> RerankResponse:
        """Cohere v2 / Jina rerank: ``relevance_score`` is sigmoid(raw) in (0, 1) unless ``raw_scores``."""

        async def handle() -> RerankResponse:
            body = await read_body(request, RerankRequest, self.config.max_request_bytes)
            self._check_model(body.model)
            docs = body.texts()
            ranked = await self._rank("rerank", request, body.query, docs, not body.raw_scores, body.top_n)
            results = [
                RerankResult(
                    index=r.index,
                    relevance_score=r.score,
                    document=RerankResultDocument(text=r.text) if body.return_documents else None,
                )
                for r in ranked
            ]
            ignored = body.ignored_fields()
            warnings = [f"ignored field(s) this server does not support: {', '.join(ignored)}"] if ignored else None
            return RerankResponse(
                id=str(uuid.uuid4()),
                model=self.config.served_model_name,
                results=results,
                meta=RerankMeta(warnings=warnings),
                usage=RerankUsage(pairs=len(docs)),
            )

        return await self._answer("rerank", request, handle)

    async def tei_rerank(self, request: Request) -> list[TEIRank]:
        """Text Embeddings Inference's ``/rerank``: ``score`` is sigmoid(raw) unless ``raw_scores``."""

        async def handle() -> list[TEIRank]:
            body = await read_body(request, TEIRerankRequest, self.config.max_request_bytes)
            ranked = await self._rank("tei_rerank", request, body.query, body.texts, not body.raw_scores, None)
            return [TEIRank(index=r.index, score=r.score, text=r.text if body.return_text else None) for r in ranked]

        return await self._answer("tei_rerank", request, handle)

    async def embeddings(self, request: Request) -> EmbeddingsResponse:
        """OpenAI embeddings, for an embedding model; a 404 naming the loaded family otherwise."""

        async def handle() -> EmbeddingsResponse:
            model = self.model
            if not isinstance(model, EmbeddingModel):
                raise APIError(
                    404,
                    "endpoint_not_supported",
                    f"/v1/embeddings needs an embedding model; this server serves a {model.model_type!r} model "
                    "(use /v1/rerank)",
                )
            body = await read_body(request, EmbeddingsRequest, self.config.max_request_bytes)
            self._check_model(body.model)
            texts = body.texts()
            check_count(len(texts), "input", self.config.max_documents)
            try:
                check_docs(texts, "input")
            except (TypeError, ValueError) as err:
                raise APIError(422, "invalid_request", str(err), field="input") from None
            dim = model.embedding_dim
            if body.dimensions is not None and body.dimensions > dim:
                raise APIError(
                    422,
                    "invalid_request",
                    f"dimensions={body.dimensions} exceeds the model's {dim}",
                    field="dimensions",
                )
            vectors, tokens = np.zeros((0, dim), dtype=np.float32), 0  # no input: an empty answer, like no documents
            if texts:
                work = self.batcher.call(lambda: _embed(model, texts, body.input_type == "query"))
                vectors, tokens = await _unless_disconnected(request, work)
            if body.dimensions is not None and body.dimensions < dim:
                vectors = prefix_vectors(vectors, body.dimensions, model.similarity)
            self.metrics.pairs.labels("embeddings").inc(len(texts))
            data = [Embedding(index=i, embedding=_vector_out(v, body.encoding_format)) for i, v in enumerate(vectors)]
            usage = EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens)
            return EmbeddingsResponse(data=data, model=self.config.served_model_name, usage=usage)

        return await self._answer("embeddings", request, handle)

    async def health(self) -> dict[str, Any]:
        """Liveness and what is served; no API key needed (load balancers probe it)."""
        return {
            "status": "ok",
            "model": self.config.served_model_name,
            "model_type": self.model.model_type,
            "queued": self.batcher.queued,
            "endpoints": ["/v1/rerank", "/v2/rerank", "/rerank"]
            + (["/v1/embeddings"] if isinstance(self.model, EmbeddingModel) else []),
        }

    async def prometheus(self) -> Response:
        """Prometheus text format; no API key needed (scrapers rarely send one)."""
        return Response(self.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def _unless_disconnected(request: Request, work: Awaitable[_T]) -> _T:
    """``await work``, cancelled (so dropped from the batcher's queue, or stopped at its next slice)
    if the client disconnects meanwhile. Called once the body is read: the only message left to
    receive is the disconnect."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            raise APIError(499, "client_disconnected", "the client went away before the answer was ready")
        return task.result()
    finally:
        watcher.cancel()
        if not task.done():  # this request was cancelled itself (its timeout): the work goes too
            task.cancel()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _embed(model: EmbeddingModel, texts: list[str], is_query: bool) -> tuple[np.ndarray, int]:
    """Vectors as ranking encodes them, and the tokens the model read (capped at ``max_length``)."""
    encode = model.encode_queries if is_query else model.encode_documents
    vectors = encode(texts)
    lengths = model.model.tokenizer(texts, truncation=True, max_length=model.max_length)["input_ids"]
    return vectors, sum(len(ids) for ids in lengths)


def _vector_out(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # what OpenAI's SDK decodes: little-endian float32
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.astype(np.float64).tolist()
