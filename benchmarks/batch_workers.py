"""The scoring batch job on 1 and 2 Ray workers against the single-process path, in one run on this machine.

The job is the teacher step of distillation: a :class:`ScoreJob` with an LLM reranker (default: the fine-tuned
SmolLM2-135M yes-token reranker of ``train_llm_reranker_wikiqa.py``, ``--model``) over the first ``--pairs``
WikiQA dev pairs, ``--rows-per-shard`` questions per shard. Configurations, each from an empty job folder:

- ``local``: ``engine="local"``, this process, torch on every core (the single-process path);
- ``ray x1``: one Ray actor holding every CPU (``cpus_per_worker`` = the cores; torch threads follow);
- ``ray x2``: two actors of half the CPUs each.

Each Ray run includes starting its actors (each imports torch and loads the model). The local Ray cluster is
started once before the timings. Reported: pairs/s and the ratio to ``local``; outputs compared to ``local``.

    python benchmarks/batch_workers.py [--model PATH] [--pairs 480] [--repeats 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import WIKIQA_DEV, write_results

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "outputs" / "teacher_360" / "run" / "full"))
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=480)
    parser.add_argument("--rows-per-shard", type=int, default=4, help="questions per shard")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each configuration, interleaved")
    args = parser.parse_args()

    import logging

    import ray

    from rag_retrieval_integrations.batch import ScoreJob, run_job

    cores = os.cpu_count() or 1
    with open(WIKIQA_DEV, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[: args.pairs]
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["question"], []).append(row["sentence"])
    work = Path(tempfile.mkdtemp(prefix="batch-workers-"))
    data = work / "pairs.jsonl"
    data.write_text("".join(json.dumps({"query": q, "documents": d}) + "\n" for q, d in groups.items()))
    job = ScoreJob(args.model, model_options={"max_length": args.max_length}, batch_size=args.batch_size)
    ray.init(num_cpus=cores, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    configs = {
        "local": {"engine": "local"},
        "ray x1": {"engine": "ray", "workers": 1, "cpus_per_worker": cores},
        "ray x2": {"engine": "ray", "workers": 2, "cpus_per_worker": max(1, cores // 2)},
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    outputs: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        for name, options in configs.items():
            folder = work / f"{name.replace(' ', '')}-{repeat}"
            start = time.perf_counter()
            result = run_job(job, data, folder, rows_per_shard=args.rows_per_shard, show_progress_bar=False, **options)
            times[name].append(time.perf_counter() - start)
            outputs[name] = [s for r in result.read() for s in r["scores"]]
            print(f"{name}: {times[name][-1]:.1f} s", flush=True)
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    pairs = len(rows)
    base = min(times["local"])
    table = []
    for name in configs:
        best = min(times[name])
        diff = float(np.max(np.abs(np.array(outputs[name]) - np.array(outputs["local"]))))
        table.append(
            {"config": name, "seconds": best, "pairs_per_s": pairs / best, "vs_local": base / best, "max_diff": diff}
        )
    lines = [
        f"Scoring job, {pairs} WikiQA dev pairs ({len(groups)} questions, {args.rows_per_shard} per shard), "
        f"`{Path(args.model).name}` at max_length {args.max_length}, batch {args.batch_size}; {cores} cores, "
        f"best of {args.repeats} interleaved runs, Ray actor start-up included.",
        "",
        "| configuration | pairs/s | vs local | max score diff vs local |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['config']} | {r['pairs_per_s']:.1f} | {r['vs_local']:.2f}x | {r['max_diff']:.1e} |" for r in table]
    command = "python benchmarks/batch_workers.py " + " ".join(sys.argv[1:])
    lines += ["", f"Command: `{command}`"]
    write_results("batch_workers", command, args, table, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
