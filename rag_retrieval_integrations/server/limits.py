"""The server's settings and the checks every request passes: API key, body size, body shape.

Bodies are read here, not by FastAPI's automatic parsing, so that a body over the byte limit
is refused while it streams in (413) instead of after it sits in memory, and a malformed one
gets a 422 that names the field.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

_Body = TypeVar("_Body", bound=BaseModel)


@dataclass(frozen=True)
class ServerConfig:
    """What the server accepts and how it batches; the CLI's flags map onto these fields.

    Attributes:
        served_model_name: the name requests may give as ``model`` (and answers report);
            a request naming another model is refused, none is ever loaded.
        batch_wait_ms: how long the oldest request waits for others to share its pass.
        max_batch_pairs: the most (query, document) pairs in one ``score_pairs`` pass.
        max_queue: requests waiting beyond this are refused with 503 and ``Retry-After``.
        max_documents: documents (or embedding inputs) per request; more is a 413.
        max_request_bytes: request body size; more is a 413.
        request_timeout_s: a request not answered by then gets a 504 (and is dropped if not
            yet scored).
        api_key: when set, every model endpoint needs ``Authorization: Bearer <api_key>``.
        retry_after_s: the ``Retry-After`` a 503 sends.
    """

    served_model_name: str
    batch_wait_ms: float = 2.0
    max_batch_pairs: int = 512
    max_queue: int = 256
    max_documents: int = 1000
    max_request_bytes: int = 4 * 1024 * 1024
    request_timeout_s: float = 60.0
    api_key: str | None = None
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.served_model_name, str) or not self.served_model_name:
            raise ValueError(f"served_model_name must be a non-empty string, got {self.served_model_name!r}")
        for name in ("max_batch_pairs", "max_queue", "max_documents", "max_request_bytes", "retry_after_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("batch_wait_ms", "request_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if self.request_timeout_s == 0:
            raise ValueError("request_timeout_s must be positive, got 0")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ValueError("api_key must be a non-empty string or None")
        if self.api_key is not None and self.api_key != self.api_key.strip():
            # clients' keys are compared stripped: this one could never match, and every request would be a 401
            raise ValueError("api_key has leading or trailing whitespace (a newline?): no request could match it")
        if self.api_key is not None and not all(ord(c) < 256 for c in self.api_key):
            raise ValueError("api_key holds characters an HTTP header cannot carry (only latin-1 ones can)")


class APIError(Exception):
    """An error answer: its HTTP status, a type, a message, and the field at fault if any."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.details = details


def check_api_key(request: Request, api_key: str | None) -> None:
    """401 unless the request carries ``Authorization: Bearer <api_key>`` (when a key is set).

    Compared with ``hmac.compare_digest``, so the answer's timing does not reveal how much of
    a guessed key was right.
    """
    if api_key is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # headers arrive decoded as latin-1: the key's latin-1 bytes are what a client sent
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_key.encode()):
        raise APIError(
            401,
            "unauthorized",
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def read_body(request: Request, schema: type[_Body], max_bytes: int) -> _Body:
    """The request's JSON body as ``schema``: 413 past ``max_bytes``, 422 naming the field when malformed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(size, max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:
        raise APIError(400, "client_disconnected", "the client went away before sending its whole body") from None
    raw = b"".join(chunks)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise APIError(422, "invalid_json", f"the body is not valid JSON: {err}", field="body") from None
    except RecursionError:
        raise APIError(422, "invalid_json", "the body nests JSON too deeply to be read", field="body") from None
    if not isinstance(data, dict):
        raise APIError(
            422, "invalid_request", f"the body must be a JSON object, got {type(data).__name__}", field="body"
        )
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        errors = err.errors(include_url=False, include_input=False)
        first = errors[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        details = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in errors]
        raise APIError(422, "invalid_request", f"{field}: {first['msg']}", field=field, details=details) from None


def _too_large(size: int, max_bytes: int) -> APIError:
    return APIError(
        413, "request_too_large", f"the body has {size} bytes or more; this server takes at most {max_bytes}"
    )


def check_count(count: int, field: str, max_documents: int) -> None:
    """413 when a request has more than ``max_documents`` documents (or inputs) in ``field``."""
    if count > max_documents:
        raise APIError(
            413,
            "too_many_documents",
            f"{field} has {count} entries; this server takes at most {max_documents} per request",
            field=field,
        )
