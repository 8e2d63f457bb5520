"""A real OpenAI-compatible ``/v1/chat/completions`` endpoint on a loopback port, with a scripted model.

The model is a script, not an LLM, so that tests know the right answer: it reads the passages of
the listwise prompt (``[label] text`` lines) and the query, and answers with the labels ordered by
how many of each passage's words are query words (ties in input order), as ``[2] > [1] > [3]``. A test may
set ``answers`` to reply with given texts instead (garbage, partial orders), and ``status`` to
answer with an HTTP error. Every request body is kept in ``requests``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PASSAGE = re.compile(r"^\[([A-Za-z0-9]+)\] (.*)$", re.MULTILINE)
_QUERY = re.compile(r"^Search query: (.*)$", re.MULTILINE)


def overlap_order(query: str, passages: list[tuple[str, str]]) -> list[str]:
    """Labels ordered by how many of each passage's words are query words, most first; ties in input order."""
    words = set(query.lower().split())
    ranked = sorted(passages, key=lambda p: -sum(w in words for w in p[1].lower().split()))
    return [label for label, _ in ranked]


@dataclass
class ScriptedChatModel:
    """What the endpoint answers; see the module docstring."""

    answers: list[str] = field(default_factory=list)
    status: int = 200
    requests: list[dict] = field(default_factory=list)

    def reply(self, body: dict) -> str:
        self.requests.append(body)
        if self.answers:
            return self.answers.pop(0)
        user = body["messages"][-1]["content"]
        query = _QUERY.findall(user)[-1]
        return " > ".join(f"[{label}]" for label in overlap_order(query, _PASSAGE.findall(user)))


@contextmanager
def chat_endpoint(model: ScriptedChatModel) -> Iterator[str]:
    """Serve ``model`` on 127.0.0.1 (a free port) while the block runs; yields the base URL (``.../v1``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
            elif model.status != 200:
                self._send(model.status, {"error": {"message": "scripted failure"}})
            else:
                content = model.reply(body)
                self._send(200, {"object": "chat.completion", "choices": [{"message": {"content": content}}]})

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
