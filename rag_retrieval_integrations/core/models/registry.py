"""The model families by name, and detection of a checkpoint's family.

Families register themselves with :func:`register_model_type` (a class decorator);
``Reranker(path, model_type=None)`` asks :func:`detect_model_type`, which looks only at what the
checkpoint says about itself: our metadata file (``rag_retrieval.json``, written by our trainers)
when there is one, else each registered family's ``matches`` rule over sentence-transformers'
``config_sentence_transformers.json`` / ``modules.json`` and the ``architectures`` and
``model_type`` of ``config.json``, in the families' ``detection_priority`` order. It never looks at
the model's name. This module imports no family: families import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..errors import InvalidCheckpointError, UnknownModelTypeError
from .checkpoint import CheckpointInfo, st_model_type

if TYPE_CHECKING:
    from .base import BaseReranker

_REGISTRY: dict[str, type[BaseReranker]] = {}
_R = TypeVar("_R", bound="type[BaseReranker]")


def register_model_type(name: str) -> Callable[[_R], _R]:
    """Class decorator that makes a family available as ``Reranker(path, model_type=name)``."""

    def decorator(cls: _R) -> _R:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model_type {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls.model_type = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def available_model_types() -> list[str]:
    """The ``model_type`` values that ``Reranker`` accepts."""
    return sorted(_REGISTRY)


def get_model_class(model_type: str) -> type[BaseReranker]:
    """The family registered as ``model_type``; an :class:`UnknownModelTypeError` listing the valid ones."""
    if model_type not in _REGISTRY:
        raise UnknownModelTypeError(
            f"unknown model_type {model_type!r}; valid values are {available_model_types()} (or None to detect it)"
        )
    return _REGISTRY[model_type]


def reranker_backbones() -> list[str]:
    """The families ``rag-retrieval-train reranker`` trains (those declaring ``reranker_backbone`` on
    their own class), by ``model_type``."""
    return sorted(name for name, cls in _REGISTRY.items() if vars(cls).get("reranker_backbone"))


def detection_order() -> list[type[BaseReranker]]:
    """The registered families that take part in detection, in the order they are asked: those
    declaring a ``detection_priority`` on their own class (it is not inherited), lowest first,
    ties by ``model_type``."""
    detected = [cls for cls in _REGISTRY.values() if vars(cls).get("detection_priority") is not None]
    return sorted(detected, key=lambda cls: (cls.detection_priority, cls.model_type))


def detect_model_type(info: CheckpointInfo) -> str:
    """The model family a checkpoint belongs to.

    Our metadata file names it when there is one. Otherwise every registered family that declares
    a ``detection_priority`` is asked, lowest priority first, whether the checkpoint is its own
    (``cls.matches(info)``, see :class:`~.base.BaseReranker`); the first that says yes is the
    answer. A family registered by a user takes part the same way. Nothing matching is an
    :class:`InvalidCheckpointError` that says what was found and which ``model_type`` values exist.
    """
    if info.metadata.get("model_type"):
        return str(info.metadata["model_type"])
    for family in detection_order():
        if family.matches(info):
            return family.model_type
    kind = st_model_type(info)
    found = f"cannot tell which model_type {info.path!r} is: found {info.describe()}"
    if kind is not None:  # e.g. a MultiVectorEncoder folder while no installed family detects those
        raise InvalidCheckpointError(
            f"{found}; no installed model family detects sentence-transformers {kind} checkpoints: pass "
            f"model_type= one of {available_model_types()}"
        )
    if info.architectures:
        raise InvalidCheckpointError(
            f"{found}. A bare encoder has no scoring head; pass model_type='embedding' to use it as a bi-encoder "
            "with mean pooling"
        )
    raise InvalidCheckpointError(f"{found}; pass model_type= one of {available_model_types()}")


def detected_model_type(info: CheckpointInfo) -> str:
    """The detected ``model_type`` quoted, or ``"not detectable"``, for error messages."""
    try:
        return repr(detect_model_type(info))
    except (InvalidCheckpointError, ValueError):
        return "not detectable"
