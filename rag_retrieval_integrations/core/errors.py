"""Exceptions raised by the core model layer.

They subclass the built-in exception a caller would expect (``FileNotFoundError``,
``ValueError``) so that ``except ValueError`` keeps working, and carry the offending
argument, value or path in their message.
"""

from __future__ import annotations


class CheckpointNotFoundError(FileNotFoundError):
    """The model path is neither an existing folder nor a model id that could be fetched."""


class InvalidCheckpointError(ValueError):
    """The folder exists but is not a checkpoint of a kind this toolkit can load."""


class UnknownPromptFormatError(InvalidCheckpointError):
    """A decoder LLM reranker whose prompt format neither the caller nor its files give: scoring it
    in a guessed format would give near-random scores, so it is not loaded."""


class UnknownModelTypeError(ValueError):
    """``model_type`` names no registered model family."""


class OnnxExportError(RuntimeError):
    """``backend="onnx"``: ``torch.onnx`` could not export the model (the error names it and the cause)."""
