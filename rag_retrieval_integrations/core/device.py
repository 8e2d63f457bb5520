"""Device and dtype choice shared by every model family."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The requested device, or the best available one: cuda, then mps, then cpu."""
    if device is not None:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"device={device!r} is not a valid torch device: {e}") from None
        _check_available(resolved, device)
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_available(resolved: torch.device, asked: str | torch.device) -> None:
    """A device torch cannot use is refused here, not by an assertion deep inside the first forward pass."""
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(asked)!r} but CUDA is not available (no GPU, or a CPU-only torch build: "
                f"torch {torch.__version__}); use device='cpu' or leave device unset"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device={str(asked)!r} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device={str(asked)!r} but MPS is not available; use device='cpu' or leave device unset")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The dtype to load weights in.

    ``None`` means float32. Half precision is only used off the CPU: on the CPU it is slower
    than float32 for these models and changes scores, so it falls back to float32 with a warning.
    """
    if dtype is None or dtype == "auto":
        return torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise ValueError(f"dtype={dtype!r} is not supported; use one of {sorted(set(_DTYPES))} or a torch.dtype")
        dtype = _DTYPES[dtype.lower()]
    if not isinstance(dtype, torch.dtype) or dtype not in _DTYPES.values():
        raise ValueError(f"dtype={dtype!r} is not supported; use float32, float16 or bfloat16")
    if dtype != torch.float32 and device.type == "cpu":
        logger.warning("dtype=%s requested on the CPU; using float32 (half precision is only used on GPU/MPS)", dtype)
        return torch.float32
    return dtype
