"""``backend="torch-compile"``: the PyTorch forward pass compiled by ``torch.compile`` (inductor),
with the weights frozen into the compiled graph.

Freezing is what makes the CPU gain: inductor then treats the weights as constants, pre-packs
them for the CPU GEMM library and folds the bias and activation into the linear layers. It is
switched on only around this model's calls (``torch._inductor.config.patch``), so other models
the process compiles keep the global setting. Compiled with ``dynamic=True``, so batches of any
size and length reuse one graph instead of recompiling per shape.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

import torch

logger = logging.getLogger(__name__)

CPP_COMPILERS = ("g++", "c++", "clang++")


def require_cpp_compiler() -> str:
    """The C++ compiler inductor builds CPU kernels with, or a ``RuntimeError`` saying how to get one."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else list(CPP_COMPILERS)
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "backend='torch-compile' on the CPU needs a C++ compiler for torch.compile's kernels, and none of "
        f"{candidates} is on PATH: install one (e.g. `apt install g++`), set CXX, or use backend='torch' "
        "or backend='onnx'"
    )


def compile_in_place(model: torch.nn.Module, device: torch.device) -> None:
    """Make calls of ``model`` run its ``torch.compile``'d forward pass, frozen weights and all.

    The first call compiles (about half a minute to a minute for a MiniLM on 2 CPU cores; inductor's
    on-disk cache shortens later loads); scores equal the eager model's to float rounding.
    """
    import torch._inductor.config  # the freezing switch (imported here: it is not light)

    if device.type == "cpu":
        require_cpp_compiler()
    # the class's forward, bound: sentence-transformers calls ``model.forward`` itself, not the
    # module, so the compiled pass goes where ONNX's does, into the instance's ``forward``
    compiled: Callable[..., Any] = torch.compile(type(model).forward.__get__(model), dynamic=True)

    def forward(*args: Any, **kwargs: Any) -> Any:
        # frozen weights only when not training (freezing must be on while the call compiles)
        with torch._inductor.config.patch(freezing=not torch.is_grad_enabled()):
            return compiled(*args, **kwargs)

    model.forward = forward
    logger.info("backend='torch-compile': %s compiles on its first batch", type(model).__name__)
