"""Training data for the trainer tests: JSONL files over the kit's corpus, and the options a short
embedding run takes."""

from __future__ import annotations

import json
from pathlib import Path

from kit.checkpoints import CORPUS

SENTENCES = list(dict.fromkeys(CORPUS))
"""The kit's corpus without repeats, in order."""


def query_of(sentence: str) -> str:
    """A query made of a sentence's first four words, lower-cased."""
    return " ".join(sentence.split()[:4]).lower()


def write_grouped(path: Path, n: int = 16) -> Path:
    """``n`` grouped lines (a query, its positive, four negatives) for the reranker trainers."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            pos = SENTENCES[i % len(SENTENCES)]
            negs = [s for s in SENTENCES if s != pos][i % 5 : i % 5 + 4]
            f.write(json.dumps({"query": query_of(pos), "pos": [pos], "neg": negs}) + "\n")
    return path


def write_triplets(path: Path, n: int = 24) -> Path:
    """``n`` triplet lines (a query, its positive, four negatives) for the embedding trainer."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            pos = SENTENCES[i % len(SENTENCES)]
            negs = [s for s in SENTENCES if s != pos][i % 5 : i % 5 + 4]
            query = " ".join(pos.split()[:4]).lower()
            f.write(json.dumps({"query": query, "pos": [pos], "neg": negs}) + "\n")
    return path


def common_options(bi_encoder, tmp_path, **overrides):
    """The options of a six-step embedding run on :func:`write_triplets` data, with ``overrides``."""
    options = {
        "model_name_or_path": str(bi_encoder),
        "train_data": str(write_triplets(tmp_path / "train.jsonl")),
        "output_dir": str(tmp_path / "out"),
        "batch_size": 4,
        "max_steps": 6,
        "logging_steps": 1,
        "learning_rate": 1e-3,
        "report_to": [],
        "disable_progress_bar": True,
        "max_length": 32,
    }
    options.update(overrides)
    return options
