"""The ``backend=`` and ``quantize=`` options of the encoder families (cross-encoder, embedding, ColBERT)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..backends.compiled import compile_in_place
from ..backends.onnx_forward import OnnxForward, Output, run_on_onnx
from ..backends.onnx_runtime import require_onnxruntime
from ..backends.options import (
    Backend,
    CalibrationText,
    Quantization,
    check_backend,
    check_calibration,
    onnx_loading_options,
)


class EncoderBackendMixin:
    """Gives a family the ``backend`` and ``quantize`` loading options; put it before
    :class:`~.base.BaseReranker` among the bases, and call :meth:`_use_backend` once the model is loaded.

    Args:
        backend: ``"torch"`` (default) runs the model in PyTorch; ``"torch-compile"`` runs it
            through ``torch.compile`` with frozen weights (the first batch compiles; needs a C++
            compiler on the CPU); ``"onnx"`` exports its transformer
            once with ``torch.onnx`` (cached beside the checkpoint, keyed by its weights) and runs the
            forward pass in ONNX Runtime on the CPU. Tokenization, long documents, batching, pooling
            and scores' conventions are the family's own on both.
        quantize: ``None`` (float32) or ``"int8"`` (ONNX Runtime's dynamic quantization; needs
            ``backend="onnx"``; warns on a CPU without VNNI/AMX, where it gains less).
        calibration: with ``quantize="int8"``, 64 or so texts or (query, passage) pairs from
            the corpus the model will score: the model is smoothed on them (SmoothQuant) before
            quantizing, which brings int8 closer to fp32 (see docs/backends.md). ``None``: plain
            dynamic int8.
        **options: the family's other options.
    """

    backend: Backend
    quantize: Quantization | None
    onnx_forward: OnnxForward | None

    def __init__(
        self,
        model_name_or_path: Any,
        *,
        backend: Backend = "torch",
        quantize: Quantization | None = None,
        calibration: Sequence[CalibrationText] | None = None,
        **options: Any,
    ) -> None:
        self.backend, self.quantize = check_backend(backend, quantize)
        self.calibration = check_calibration(calibration, self.quantize)
        self.onnx_forward = None
        if self.backend == "onnx":
            require_onnxruntime()  # before minutes of loading, not after
            options = onnx_loading_options(options)
        super().__init__(model_name_or_path, **options)  # type: ignore[call-arg]

    def _use_backend(self, model: torch.nn.Module, output: Output, tokenizer: Any) -> None:
        """Run ``model``'s forward pass on the chosen backend (nothing to do for eager PyTorch)."""
        if self.backend == "onnx":
            path = self.checkpoint.path  # type: ignore[attr-defined]
            self.onnx_forward = run_on_onnx(model, path, output, tokenizer, self.quantize, self.calibration)
        elif self.backend == "torch-compile":
            compile_in_place(model, self.device)  # type: ignore[attr-defined]


def first_transformer(model: Any, path: str, backend: str) -> torch.nn.Module:
    """The ``transformers`` model inside a sentence-transformers model's first module (what a
    backend runs); a clear error for a model that starts with something else (static embeddings)."""
    first = model[0] if len(model) else None
    inner = getattr(first, "auto_model", None)
    if not isinstance(inner, torch.nn.Module):
        raise ValueError(
            f"backend={backend!r} runs a transformer, but the first module of {path!r} is {type(first).__name__}; "
            "use backend='torch' for this model"
        )
    return inner
