"""The examples run offline: the LangChain and LlamaIndex ones print reranked sources, the demo the whole chain."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from kit.paths import REPO

ROOT = REPO
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


@pytest.mark.slow
def test_demo_fine_tunes_evaluates_and_answers(minilm_path, tmp_path):
    """`make demo`'s script end to end (minutes on 2 cores, so out of the default run)."""
    pytest.importorskip("langchain_classic")
    pytest.importorskip("llama_index.core")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DEMO_OUT": str(tmp_path / "demo")}
    run = subprocess.run(
        [sys.executable, "examples/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for number in range(1, 7):
        assert f"[{number}/6]" in run.stdout
    assert re.search(r"MAP 0\.\d{4} -> 0\.\d{4}", run.stdout), run.stdout
    assert (tmp_path / "demo" / "eval" / "eval_rerank.json").exists()
    assert (tmp_path / "demo" / "finetuned" / "rag_retrieval.json").exists()
    assert run.stdout.count("    Q: ") == 6  # three questions answered through each framework
