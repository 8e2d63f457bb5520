"""``RemoteReranker`` checks what a server answers: a scripted server on loopback sends each bad
answer, and each is a ``RemoteRerankerError`` naming the URL and what was wrong, never scores
made up from uninitialized memory, shifted by a bad index, or NaN."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("httpx")

from rag_retrieval_integrations import RemoteReranker, RemoteRerankerError

DOCS = ["a", "b", "c"]


def results(*entries) -> bytes:
    return json.dumps({"results": [{"index": i, "relevance_score": s} for i, s in entries]}).encode()


@contextmanager
def scripted(body: bytes, delay: float = 0.0) -> Iterator[str]:
    """A server on 127.0.0.1 answering every POST with ``200`` and ``body`` (after ``delay`` s)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            time.sleep(delay)
            try:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


BAD_ANSWERS = [
    # (case, body of the 200, message fragment)
    ("every result at index 0", results((0, 4.0), (0, 5.0), (0, 6.0)), "index 0 twice"),
    ("a negative index", results((-1, 1.0), (1, 2.0), (2, 3.0)), r"results\[0\].index = -1"),
    ("an index out of range", results((0, 1.0), (1, 2.0), (3, 3.0)), r"results\[2\].index = 3"),
    ("a string index", results(("0", 1.0), (1, 2.0), (2, 3.0)), r"results\[0\].index = '0'"),
    ("a null score", results((0, None), (1, 2.0), (2, 3.0)), r"relevance_score = None"),
    (
        "a NaN score",
        b'{"results": [{"index": 0, "relevance_score": NaN}, {"index": 1, "relevance_score": 1},'
        b' {"index": 2, "relevance_score": 2}]}',
        "relevance_score = nan",
    ),
    ("too few results", results((0, 1.0)), "1 results for 3 documents"),
    ("no results key", b'{"data": []}', "no 'results' list"),
    ("a JSON list", b"[1, 2, 3]", "no 'results' list"),
    ("a body that is not JSON", b"<html>oops</html>", "not JSON"),
    ("an empty body", b"", "an empty body"),
]


@pytest.mark.parametrize("body, fragment", [c[1:] for c in BAD_ANSWERS], ids=[c[0] for c in BAD_ANSWERS])
def test_a_bad_answer_is_an_error_naming_the_server(body, fragment):
    with scripted(body) as url:
        client = RemoteReranker(url, timeout=10)
        try:
            with pytest.raises(RemoteRerankerError, match=fragment) as err:
                client.compute_score([("q", d) for d in DOCS])
            assert url in str(err.value)
        finally:
            client.close()


def test_a_good_scripted_answer_is_read_in_request_order():
    with scripted(results((2, 3.0), (0, 1.0), (1, 2.0))) as url:
        client = RemoteReranker(url, timeout=10)
        try:
            assert client.compute_score([("q", d) for d in DOCS]) == [1.0, 2.0, 3.0]
        finally:
            client.close()


def test_a_timeout_says_it_timed_out_and_after_how_long():
    with scripted(results((0, 1.0)), delay=3) as url:
        client = RemoteReranker(url, timeout=0.5)
        try:
            with pytest.raises(RemoteRerankerError, match=r"timed out after 0.5 s"):
                client.compute_score([("q", "a")])
        finally:
            client.close()


@pytest.mark.parametrize(
    "options, error, fragment",
    [
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": float("inf")}, ValueError, "timeout"),
        ({"api_key": "key\n"}, ValueError, "line break"),
        ({"api_key": "ключ"}, ValueError, "latin-1"),
        ({"api_key": 123}, TypeError, "api_key must be a str"),
    ],
)
def test_bad_client_options_are_refused_at_construction(options, error, fragment):
    with pytest.raises(error, match=fragment):
        RemoteReranker("http://127.0.0.1:9", **options)


def test_a_latin1_api_key_reaches_the_server(bert_cross_encoder):
    """The server decodes headers as latin-1: a key like 'clé' is sent so, and accepted."""
    pytest.importorskip("fastapi")
    from kit.serving import serve

    from rag_retrieval_integrations import Reranker

    model = Reranker(bert_cross_encoder)
    with serve(model, api_key="clé") as url:
        client = RemoteReranker(url, api_key="clé", timeout=30)
        try:
            assert client.compute_score([("q", "d")]) == pytest.approx(model.compute_score([("q", "d")]), abs=1e-6)
        finally:
            client.close()
