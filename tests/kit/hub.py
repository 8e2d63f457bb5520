"""A Hugging Face hub cache filled offline, so that tests load hub ids through the real loading code.

There is no network here: the cache folder is laid out as the hub's own
(``models--org--name/snapshots/<commit>``, ``refs/main``), as a user's machine has it after a first
download, and ``huggingface_hub`` is pointed at it in offline mode.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fill_hub_cache(monkeypatch: pytest.MonkeyPatch, cache: Path, repos: Mapping[str, Path]) -> Path:
    """Copy each checkpoint folder into ``cache`` as hub repo ``org/name`` and make it the cache
    ``huggingface_hub`` reads, offline, for the rest of the test."""
    import huggingface_hub.constants

    for repo, folder in repos.items():
        root = cache / f"models--{repo.replace('/', '--')}"
        shutil.copytree(folder, root / "snapshots" / COMMIT)
        (root / "refs").mkdir()
        (root / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache
