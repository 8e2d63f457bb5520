"""The ``backend``, ``quantize`` and ``calibration`` loading options: their values and how they combine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

Backend = Literal["torch", "torch-compile", "onnx"]
Quantization = Literal["int8"]
BACKENDS: tuple[str, ...] = ("torch", "torch-compile", "onnx")
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


CalibrationText = str | tuple[str, str] | list[str]
"""One calibration input: a text, or a (query, passage) pair."""


def check_calibration(calibration: Any, quantize: Any) -> tuple[str | tuple[str, str], ...] | None:
    """``calibration`` as a tuple of texts and (query, passage) pairs, or ``None`` (plain int8).

    Raises:
        ValueError: calibration without ``quantize="int8"`` (only int8 smoothing reads it), an empty
            set, or an item that is neither a text nor a pair of texts.
    """
    if calibration is None:
        return None
    if quantize != "int8":
        raise ValueError("calibration= sets int8 smoothing's activation ranges: it needs quantize='int8'")
    if isinstance(calibration, str) or not isinstance(calibration, Sequence) or not calibration:
        raise ValueError("calibration must be a non-empty list of texts or (query, passage) pairs")
    items: list[str | tuple[str, str]] = []
    for i, item in enumerate(calibration):
        if isinstance(item, str) and item:
            items.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) and t for t in item):
            items.append((item[0], item[1]))
        else:
            raise ValueError(f"calibration[{i}] must be a non-empty text or a (query, passage) pair, got {item!r}")
    return tuple(items)


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
