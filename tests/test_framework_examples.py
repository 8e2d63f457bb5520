"""examples/langchain_rag.py and examples/llamaindex_rag.py run offline and print reranked sources."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_LINE = re.compile(r"^  [\u2713 ] ([123])\. (-?\d+\.\d{3})  ")


@pytest.mark.parametrize(
    "script, framework", [("langchain_rag.py", "langchain_classic"), ("llamaindex_rag.py", "llama_index.core")]
)
def test_example_prints_reranked_sources_with_scores(minilm_path, script, framework):
    pytest.importorskip(framework)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run(
        [sys.executable, f"examples/{script}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    questions = run.stdout.split("\nQ: ")[1:]
    assert len(questions) == 4, run.stdout
    for block in questions:
        sources = [SOURCE_LINE.match(line) for line in block.splitlines()[1:]]
        sources = [m for m in sources if m]
        assert [m.group(1) for m in sources] == ["1", "2", "3"], block
        scores = [float(m.group(2)) for m in sources]
        assert scores == sorted(scores, reverse=True), block
    assert "\u2713 1." in run.stdout  # the reranker puts the right paragraph first for some questions
