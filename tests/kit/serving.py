"""Helpers of the server tests: a real uvicorn server on a loopback port, and a model that can be held.

Every HTTP call in these tests has a timeout, so a server that stops answering fails a test
instead of hanging the run.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rag_retrieval_integrations import BaseReranker
from rag_retrieval_integrations.server import ServerConfig, create_app, running_server

TIMEOUT = 30.0  # seconds, for every client call


@contextmanager
def serve(model: BaseReranker, **config) -> Iterator[str]:
    """``model`` served on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    config.setdefault("served_model_name", "tiny")
    with running_server(create_app(model, ServerConfig(**config))) as url:
        yield url


class Gate:
    """Holds every scoring call of a model until :meth:`open` (so that a queue fills up on cue).

    Wraps the instance's ``_score`` (``functools.wraps`` keeps its signature, which the core
    reads to check per-call options); ``entered`` is set once a call is being held.
    """

    def __init__(self, model: BaseReranker) -> None:
        self.model = model
        self.entered = threading.Event()
        self._open = threading.Event()
        original = model._score

        @functools.wraps(original)
        def held(*args, **kwargs):
            self.entered.set()
            if not self._open.wait(TIMEOUT):
                raise TimeoutError("the gate was never opened")
            return original(*args, **kwargs)

        model._score = held

    def open(self) -> None:
        self._open.set()
