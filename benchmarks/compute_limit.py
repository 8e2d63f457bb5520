"""The fp32 compute limit of a BERT-style encoder on this machine, to say how close a run gets.

FLOPs are counted for the forward pass on each input's exact length (no padding): per layer
``8·L·H²`` for the Q, K, V and output projections, ``4·L·H·I`` for the feed-forward block and
``4·L²·H`` for the attention scores and their weighted sum (a multiply-add is 2 FLOPs; layer
norms, softmax, GELU and the 1-logit head are left out, so the limit is a little generous). The
machine's rate is a matmul probe in the same process and thread count: the best of a few fp32
products shaped like the model's largest (inputs × hidden by hidden × intermediate).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import torch


def encoder_flops(config, lengths: Iterable[int]) -> float:
    """FLOPs of the forward pass of a BERT-style ``config`` over inputs of these token counts."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    lengths = np.asarray(list(lengths), dtype=np.float64)
    per_layer = 8 * lengths * h * h + 4 * lengths * h * i + 4 * lengths**2 * h
    return float(layers * per_layer.sum())


def matmul_gflops(hidden: int, intermediate: int, rows: int = 4096, repeats: int = 10) -> float:
    """The best fp32 GFLOP/s of ``(rows × hidden) @ (hidden × intermediate)`` in torch, at its thread count."""
    a, b = torch.randn(rows, hidden), torch.randn(hidden, intermediate)
    out = torch.empty(rows, intermediate)
    torch.mm(a, b, out=out)  # warm-up: thread pool, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * rows * hidden * intermediate / best / 1e9
