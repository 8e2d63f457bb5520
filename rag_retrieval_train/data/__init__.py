"""Training data: the JSONL format, Arrow-backed datasets, per-epoch sampling, distillation data.

- :mod:`.jsonl`: the line format, streamed and validated per line (:class:`DataFormatError`
  names ``file:line``).
- :mod:`.embedding_data`: :func:`load_examples` -> :func:`training_view` (columns of
  :func:`training_columns`) + :class:`EpochResampleCallback` for new hard negatives every epoch.
- :mod:`.distillation`: :func:`load_distillation_data`, texts with teacher vectors from a ``.npy``.
"""

from .distillation import TeacherVectors, load_distillation_data, open_teacher_vectors
from .embedding_data import (
    KINDS,
    EpochResampleCallback,
    GroupSampler,
    Kind,
    load_examples,
    row_rng,
    training_columns,
    training_view,
)
from .jsonl import ALLOWED_KEYS, DataFormatError, EmbeddingExample, iter_jsonl, iter_lines, validate_example

__all__ = [
    "ALLOWED_KEYS",
    "KINDS",
    "DataFormatError",
    "EmbeddingExample",
    "EpochResampleCallback",
    "GroupSampler",
    "Kind",
    "TeacherVectors",
    "iter_jsonl",
    "iter_lines",
    "load_distillation_data",
    "load_examples",
    "open_teacher_vectors",
    "row_rng",
    "training_columns",
    "training_view",
    "validate_example",
]
