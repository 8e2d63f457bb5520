"""onnxruntime itself: the import (with the extra to install), CPU features, inference sessions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""x86 flags of instructions that multiply-accumulate int8 in one step (VNNI, AMX). Without them
onnxruntime's int8 kernels widen to int16 first (AVX2), and int8 gains less over float32."""


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, after checking that the exporter's packages are there too.

    Raises:
        ImportError: one line naming the missing package and the extra that installs all of them.
    """
    missing = []
    for name in ("onnxruntime", "onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(
            f"backend='onnx' needs {', '.join(missing)} (onnxruntime runs the model, onnx and onnxscript export "
            "it): pip install 'rag-retrieval[onnx]'"
        )
    import onnxruntime

    return onnxruntime


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux); empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def has_int8_dot_product(flags: set[str] | None = None) -> bool | None:
    """Whether the CPU (or ``flags``, by default :func:`cpu_flags`) has int8 dot-product
    instructions; ``None`` where that cannot be told (no flags to read: not Linux; ARM's
    dot-product instructions are not checked)."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return None
    return any(flag in flags for flag in INT8_DOT_PRODUCT_FLAGS)


def int8_reduce_range(flags: set[str] | None = None) -> bool:
    """Whether int8 weights should use 7 bits (``reduce_range``) on this CPU: everywhere it is not
    known to have int8 dot-product instructions.

    Without VNNI, onnxruntime's x86 kernels multiply uint8 activations by int8 weights with
    ``vpmaddubsw``, which adds two products into a saturating int16: 255 * 127 * 2 overflows it,
    and large activations (a BERT's outlier channels) come out clipped. 7-bit weights keep every
    sum in range, at the cost of half the weight resolution. On a tiny cross-encoder with outlier
    channels the largest score error of smoothed int8 fell from 2.4e-2 to 1.2e-4 on an AVX2 CPU
    (``tests/core/backends/test_onnx_smoothing.py``); onnxruntime's quantization guide gives the same advice.
    """
    return has_int8_dot_product(flags) is not True


def warn_if_slow_int8() -> None:
    """Warn that int8 gains less on this CPU when it lacks VNNI/AMX."""
    if has_int8_dot_product() is False:
        logger.warning(
            "quantize='int8' on a CPU without int8 dot-product instructions (none of %s in /proc/cpuinfo): "
            "onnxruntime's int8 kernels are slower there and the speed-up over float32 is smaller",
            ", ".join(INT8_DOT_PRODUCT_FLAGS),
        )


def inference_session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session on ``path``, with every graph optimization and as many threads
    as torch uses (so ``torch.set_num_threads`` governs both backends alike)."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1  # one stream of operators: a BERT layer has no parallel branches worth it
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initializers are noise here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
