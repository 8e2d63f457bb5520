"""The suite's own rules: in the locked run a skip fails; under test-latest a broken peer skips, named."""

from __future__ import annotations

import os

from kit.paths import REPO

pytest_plugins = ["pytester"]

SUITE = """
import pytest
from kit.peers import import_peer

def test_needs_a_missing_module():
    pytest.importorskip("no_such_module_for_rag_retrieval")

def test_needs_a_broken_peer():
    import_peer("no_such_peer_for_rag_retrieval")

@pytest.mark.skipif(True, reason="needs a GPU")
def test_needs_a_gpu():
    pass
"""


def run(pytester, monkeypatch, **env):
    for name in ("RAG_RETRIEVAL_LOCKED", "RAG_RETRIEVAL_TEST_LATEST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tests = str(REPO / "tests")  # where the kit package lives
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(test_suite=SUITE)
    # a fresh process: peers.py reads the environment when it is imported
    return pytester.runpytest_subprocess("-p", "kit.locked_run", "-rs", "-p", "no:cacheprovider")


def test_locked_run_fails_every_skip_but_hardware_ones(pytester, monkeypatch):
    result = run(pytester, monkeypatch, RAG_RETRIEVAL_LOCKED="1")
    result.assert_outcomes(failed=2, skipped=1)
    result.stdout.fnmatch_lines(["*skipped in the locked run (make test)*no_such_module_for_rag_retrieval*"])


def test_latest_run_skips_a_peer_that_cannot_import_and_names_it(pytester, monkeypatch):
    result = run(pytester, monkeypatch, RAG_RETRIEVAL_TEST_LATEST="1")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        ["*peer cannot import under the newest releases: no_such_peer_for_rag_retrieval (ModuleNotFoundError*"]
    )


def test_a_peer_that_cannot_import_fails_outside_test_latest(pytester, monkeypatch):
    result = run(pytester, monkeypatch)
    result.assert_outcomes(failed=1, skipped=2)
