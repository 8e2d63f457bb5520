"""The seam between a family and ONNX Runtime: a transformer whose forward pass runs in a session.

The family keeps its ``transformers`` model object (config, tokenizer, embeddings' sizes: what
sentence-transformers and the family read) and everything around it: tokenization, windows,
batching, pooling, normalization, a ColBERT projection. Only ``model.forward`` is replaced by
:class:`OnnxForward`, which feeds the same tensors to an onnxruntime session and returns the
same output object, so each caller (``CrossEncoderReranker``, sentence-transformers'
``Transformer`` module) runs unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from .onnx_export import OnnxModelCache
from .onnx_runtime import inference_session, warn_if_slow_int8
from .smoothing import calibration_batches, calibration_key

Output = Literal["logits", "last_hidden_state"]


class OnnxForward:
    """A ``forward`` that runs an onnxruntime session and returns what ``transformers`` would.

    Args:
        session: the ``onnxruntime.InferenceSession`` of the exported model.
        output: ``"logits"`` (a sequence classifier) or ``"last_hidden_state"`` (an encoder).
        path: the ONNX file the session runs (shown in ``repr`` and read by tests).
    """

    def __init__(self, session: Any, output: Output, path: str) -> None:
        self.session = session
        self.output = output
        self.path = path
        self.input_names = [i.name for i in session.get_inputs()]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

        given = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
        if given["attention_mask"] is None:
            given["attention_mask"] = torch.ones_like(input_ids)
        feed = {}
        for name in self.input_names:
            tensor = given.get(name)
            # BERT's own default for a missing token_type_ids is zeros
            feed[name] = (
                np.zeros(input_ids.shape, np.int64)
                if tensor is None
                else tensor.cpu().numpy().astype(np.int64, copy=False)
            )
        result = torch.from_numpy(self.session.run([self.output], feed)[0])
        if self.output == "logits":
            return SequenceClassifierOutput(logits=result)
        return BaseModelOutput(last_hidden_state=result)

    def __repr__(self) -> str:
        return f"OnnxForward({self.path!r}, output={self.output!r})"


def model_input_names(model: torch.nn.Module, tokenizer: Any) -> list[str]:
    """The inputs to export: ids and mask, and ``token_type_ids`` where the tokenizer makes them and
    the model takes them (BERT yes; RoBERTa, XLM-R no)."""
    names = ["input_ids", "attention_mask"]
    takes = set(inspect.signature(model.forward).parameters)
    if "token_type_ids" in (getattr(tokenizer, "model_input_names", None) or ()) and "token_type_ids" in takes:
        names.append("token_type_ids")
    return names


def run_on_onnx(
    model: torch.nn.Module,
    checkpoint: str,
    output: Output,
    tokenizer: Any,
    quantize: str | None,
    calibration: Sequence[str | tuple[str, str]] | None = None,
) -> OnnxForward:
    """Make ``model``'s forward pass run in onnxruntime (exported, maybe smoothed and quantized,
    cached) and return the :class:`OnnxForward` now in place. ``calibration``: int8 smooths the model
    on these texts first; a ``"logits"`` model (a cross-encoder) reads pairs as pairs, an encoder
    reads each text alone."""
    input_names = model_input_names(model, tokenizer)
    cache = OnnxModelCache.for_model(checkpoint, model)
    if quantize == "int8":
        warn_if_slow_int8()
        batches = (
            calibration_batches(tokenizer, input_names, calibration, pairs=output == "logits") if calibration else []
        )
        path = cache.model_file(model, output, input_names, "int8", batches, calibration_key(calibration))
    else:
        path = cache.model_file(model, output, input_names, "fp32")
    forward = OnnxForward(inference_session(path), output, str(path))
    model.forward = forward  # an instance attribute: nn.Module.__call__ and getattr(model, "forward") find it
    return forward
