"""Where the repository and the shared data lie, for tests at any depth of ``tests/``."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository's root (``tests/kit/paths.py`` -> two folders up)."""

SHARED_DATA = REPO.parent / "shared" / "data"
"""``../shared/data`` beside the clone: the real datasets (its README says which)."""
