"""The ``backend`` and ``quantize`` loading options: their values and how they combine."""

from __future__ import annotations

from typing import Any, Literal

import torch

Backend = Literal["torch", "onnx"]
Quantization = Literal["int8"]
BACKENDS: tuple[str, ...] = ("torch", "onnx")
QUANTIZATIONS: tuple[str | None, ...] = (None, "int8")


def check_backend(backend: Any, quantize: Any) -> tuple[Backend, Quantization | None]:
    """``(backend, quantize)`` once both are known values that go together.

    Raises:
        ValueError: an unknown value, or ``quantize`` asked of the PyTorch backend (int8 is
            ONNX Runtime's dynamic quantization; PyTorch's own would be another model).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {list(QUANTIZATIONS)}, got {quantize!r}")
    if quantize is not None and backend != "onnx":
        raise ValueError(f"quantize={quantize!r} needs backend='onnx' (got backend={backend!r})")
    return backend, quantize


def onnx_loading_options(options: dict[str, Any]) -> dict[str, Any]:
    """The constructor options with ONNX Runtime's constraints applied: the CPU by default, and
    an error for another device or a half-precision dtype (the CPU execution provider runs float32)."""
    dtype = options.get("dtype")
    if dtype not in (None, "auto", "float32", "fp32", torch.float32):
        raise ValueError(f"backend='onnx' runs in float32 (quantize='int8' for less), got dtype={dtype!r}")
    device = options.get("device")
    if device is None:
        return {**options, "device": "cpu"}
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        return options  # the base class names the invalid device
    if kind != "cpu":
        raise ValueError(
            f"backend='onnx' runs on the CPU (onnxruntime's CPU execution provider), got device={str(device)!r}; "
            "use device='cpu', or backend='torch' on a GPU"
        )
    return options
