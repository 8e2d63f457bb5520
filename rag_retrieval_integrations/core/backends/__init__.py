"""Inference backends of the encoder families: PyTorch (the default), PyTorch through
``torch.compile`` (:mod:`.compiled`) and ONNX Runtime fp32/int8.

A backend is a loading option of a family (``Reranker(path, backend="onnx", quantize="int8")``),
not a family of its own: the family tokenizes, windows, batches and pools as on PyTorch, and only
the transformer's forward pass is compiled or runs in onnxruntime (see :mod:`.onnx_forward`).
"""

from .onnx_export import ONNX_FOLDER, OnnxModelCache, onnx_cache_dir
from .onnx_forward import OnnxForward, run_on_onnx
from .onnx_runtime import has_int8_dot_product, require_onnxruntime
from .options import BACKENDS, QUANTIZATIONS, check_backend

__all__ = [
    "BACKENDS",
    "ONNX_FOLDER",
    "QUANTIZATIONS",
    "OnnxForward",
    "OnnxModelCache",
    "check_backend",
    "has_int8_dot_product",
    "onnx_cache_dir",
    "require_onnxruntime",
    "run_on_onnx",
]
