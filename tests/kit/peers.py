"""Peer libraries that parity tests compare against, and how their import failures are reported.

A peer (FlagEmbedding) is not a dependency of the package: it only gives the reference
scores. Under ``make test`` (the locked environment) a peer that cannot import fails the test,
as any other error would. Under ``make test-latest`` (``RAG_RETRIEVAL_TEST_LATEST=1``, the
newest releases) a peer that breaks on a new release of its own dependencies is not our
failure, so the test is skipped with a reason naming the peer and its import error.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

LATEST = os.environ.get("RAG_RETRIEVAL_TEST_LATEST") == "1"
PEER_SKIP_PREFIX = "peer cannot import under the newest releases:"


def import_peer(module: str) -> ModuleType:
    """``importlib.import_module(module)``; under ``make test-latest`` an import error skips instead."""
    try:
        return importlib.import_module(module)
    except Exception as err:  # a peer's import can fail with anything its own imports raise
        if LATEST:
            pytest.skip(f"{PEER_SKIP_PREFIX} {module.split('.')[0]} ({type(err).__name__}: {err})")
        raise
