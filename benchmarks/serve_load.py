"""Serving under concurrent load: micro-batching against one request per pass, on loopback.

Two ``rag-retrieval-serve`` processes serve the same cross-encoder (all-MiniLM-L6-v2 with a
seeded, untrained 1-logit head, as ``rerank_speed.py`` builds it: speed does not depend on the
head being trained): one micro-batching (``--batch-wait-ms 2``, up to ``--max-batch-pairs 512``),
one scoring each request alone (``--batch-wait-ms 0 --max-batch-pairs 1``). ``--clients``
concurrent clients each send ``--requests`` rerank requests of 20 WikiQA dev candidates (a
question's own, topped up with the next questions'), to one server and then the other,
alternating which goes first, over ``--rounds`` rounds. Every answer is checked against the same
request ranked directly with ``Reranker.rank`` (same order; scores within float32 rounding).
Last, a burst of ``--burst`` simultaneous requests against a third server with ``--max-queue 16``
shows overload: every request gets 200 or 503 + Retry-After within the client timeout.

    python benchmarks/serve_load.py [--clients 32] [--requests 2] [--rounds 3] [--burst 64]

Prints a Markdown table (requests/s, pairs/s, p50/p99 latency, the ratio) and writes
``results/serve_load.json`` and ``results/serve_load.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WIKIQA_DEV, read_wikiqa
from rerank_speed import build_checkpoint

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DOCS_PER_REQUEST = 20
# a generous timeout: on a loaded 2-core machine, 32 clients queue for tens of seconds, and a 504
# would free capacity and distort the comparison
NO_TIMEOUT = ["--request-timeout-s", "900"]
SETTINGS = {
    "micro-batching": ["--batch-wait-ms", "2", "--max-batch-pairs", "512", *NO_TIMEOUT],
    "one request per pass": ["--batch-wait-ms", "0", "--max-batch-pairs", "1", *NO_TIMEOUT],
}


def request_pool(n: int) -> list[tuple[str, list[str]]]:
    """``n`` (question, 20 candidates) requests from WikiQA dev, in file order."""
    groups = list(read_wikiqa(WIKIQA_DEV).items())
    pool = []
    for i in range(n):
        question, candidates = groups[i % len(groups)]
        docs = [s for s, _ in candidates]
        j = i + 1
        while len(docs) < DOCS_PER_REQUEST:
            docs += [s for s, _ in groups[j % len(groups)][1]]
            j += 1
        pool.append((question, docs[:DOCS_PER_REQUEST]))
    return pool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(model: Path, flags: list[str]):
    """``rag-retrieval-serve model flags`` in a subprocess; yields its base URL once /health answers."""
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "rag_retrieval_integrations.server.cli", str(model), "--port", str(port)]
    process = subprocess.Popen([*command, "--log-level", "warning", *flags], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with status {process.returncode}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 300 s")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


async def load(url: str, pool, clients: int, per_client: int, timeout: float):
    """Every client sends its requests one after the other; returns (seconds, latencies, answers)."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def one_client(c: int):
            out = []
            for j in range(per_client):
                k = (c * per_client + j) % len(pool)
                query, docs = pool[k]
                start = time.perf_counter()
                response = await client.post("/v1/rerank", json={"query": query, "documents": docs})
                out.append((k, time.perf_counter() - start, response.status_code, response.json()))
            return out

        start = time.perf_counter()
        results = await asyncio.gather(*(one_client(c) for c in range(clients)))
        return time.perf_counter() - start, [r for per in results for r in per]


def check(answers, direct) -> tuple[int, int, float]:
    """(answers that are not a 200, 200s ranked in another order than directly, max abs score difference)."""
    failed, reordered, worst = 0, 0, 0.0
    for k, _, status, body in answers:
        if status != 200:
            failed += 1
            continue
        got, want = body["results"], direct[k]
        if [r["index"] for r in got] != want.indices:
            reordered += 1
        worst = max(worst, float(np.max(np.abs(np.array([r["relevance_score"] for r in got]) - want.scores))))
    return failed, reordered, worst


async def burst(url: str, pool, n: int, timeout: float) -> dict[str, int]:
    import httpx

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        bodies = [{"query": q, "documents": d} for q, d in (pool[i % len(pool)] for i in range(n))]
        responses = await asyncio.gather(*(client.post("/v1/rerank", json=b) for b in bodies))
    counts: dict[str, int] = {}
    for r in responses:
        key = f"{r.status_code}" + (" with Retry-After" if "retry-after" in r.headers else "")
        counts[key] = counts.get(key, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2, help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=900.0, help="client timeout per request, seconds")
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from rag_retrieval_integrations import Reranker

    hf_logging.set_verbosity_error()
    pool = request_pool(args.clients * args.requests)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_checkpoint(Path(tmp) / "minilm-ce")
        model = Reranker(path, device="cpu")
        start = time.perf_counter()
        direct = [model.rank(q, d, normalize=True) for q, d in pool]
        print(f"{len(pool)} requests ranked directly in {time.perf_counter() - start:.0f} s", flush=True)
        del model  # the servers get the cores
        rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
        latencies: dict[str, list[float]] = {name: [] for name in SETTINGS}
        checks: dict[str, list[tuple[int, int, float]]] = {name: [] for name in SETTINGS}
        with server(path, SETTINGS["micro-batching"]) as batched, server(path, SETTINGS["one request per pass"]) as one:
            urls = {"micro-batching": batched, "one request per pass": one}
            asyncio.run(load(batched, pool[:64], 8, 1, args.timeout))  # warm-up, not timed
            asyncio.run(load(one, pool[:64], 8, 1, args.timeout))
            names = list(SETTINGS)
            for r in range(args.rounds):
                for name in names[r % 2 :] + names[: r % 2]:
                    seconds, answers = asyncio.run(load(urls[name], pool, args.clients, args.requests, args.timeout))
                    rates[name].append(len(answers) / seconds)
                    latencies[name] += [a[1] for a in answers]
                    checks[name].append(check(answers, direct))
                    print(f"round {r + 1} {name}: {len(answers) / seconds:.1f} requests/s", flush=True)
        with server(path, [*SETTINGS["micro-batching"], "--max-queue", "16"]) as small_queue:  # overload
            start = time.perf_counter()
            overload = asyncio.run(burst(small_queue, pool, args.burst, args.timeout))
            burst_seconds = time.perf_counter() - start

    rows = []
    for name in SETTINGS:
        rate = statistics.median(rates[name])
        lat = np.array(latencies[name]) * 1000
        rows.append(
            {
                "setting": name,
                "requests_per_s": rate,
                "pairs_per_s": rate * DOCS_PER_REQUEST,
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "not_200": sum(c[0] for c in checks[name]),
                "reordered": sum(c[1] for c in checks[name]),
                "max_abs_score_diff": max(c[2] for c in checks[name]),
            }
        )
    base = rows[1]["requests_per_s"]
    header = (
        f"{args.clients} concurrent clients x {args.requests} requests of {DOCS_PER_REQUEST} WikiQA dev candidates, "
        f"{args.rounds} interleaved rounds (median requests/s; latency percentiles over all rounds), "
        f"{torch.get_num_threads()} torch threads per server, {platform.processor() or platform.machine()}"
    )
    lines = [
        header,
        "",
        "| setting | requests/s | pairs/s | speed-up | p50 ms | p99 ms | not 200 | order differs from direct | max abs score diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['setting']} | {row['requests_per_s']:.1f} | {row['pairs_per_s']:.0f} | "
            f"{row['requests_per_s'] / base:.2f}x | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | "
            f"{row['not_200']} | {row['reordered']} of {args.clients * args.requests * args.rounds} | "
            f"{row['max_abs_score_diff']:.1e} |"
        )
    lines += ["", f"burst of {args.burst} simultaneous requests, --max-queue 16: {overload}, in {burst_seconds:.1f} s"]
    report = "\n".join(lines)
    print("\n" + report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_load.md").write_text(report + "\n")
    summary = {"args": vars(args), "rows": rows, "burst": overload, "burst_seconds": burst_seconds}
    (RESULTS / "serve_load.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
