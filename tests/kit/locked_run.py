"""pytest plugin: under ``make test`` (``RAG_RETRIEVAL_LOCKED=1``) a skipped test fails.

``make test`` installs the locked environment, which holds every peer, extra and data set the
suite uses: a skip there would hide a missing one (a parity test skipping because its peer
cannot import passes unnoticed), so it is reported as a failure with the skip's reason. Only
tests that need hardware the machine lacks may skip. ``make test-latest`` does not set the
variable: there a peer that breaks under the newest releases skips (see ``kit/peers.py``).
"""

from __future__ import annotations

import os

import pytest

SKIPS_ALLOWED_WHEN_LOCKED = ("needs a GPU",)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("RAG_RETRIEVAL_LOCKED") != "1" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not reason.startswith(SKIPS_ALLOWED_WHEN_LOCKED):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in the locked run (make test), where every test must run: {reason}\n"
            "install with `make test` (the lock holds every peer and extra) and keep ../shared beside the repo"
        )
