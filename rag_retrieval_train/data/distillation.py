"""Embedding distillation data (Jasper/Stella): texts aligned with a teacher's vectors.

The texts come from a JSONL file (``{"text": ...}`` per line, blank lines skipped) or a plain
``.txt`` file (one text per line; a blank line is an error, since it would shift every later
text against its vector). Row ``i`` of the ``.npy`` file is the teacher vector of text ``i``.
The texts go to an on-disk Arrow dataset; the vectors stay in the ``.npy`` file, memory-mapped,
and each batch reads only its own rows (:class:`TeacherVectors`), so they are never copied into
Arrow or loaded whole.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, Features, Value

from .arrow import dataset_from_files
from .jsonl import DataFormatError, iter_jsonl, iter_lines

__all__ = ["TEXT_SUFFIXES", "TeacherVectors", "load_distillation_data", "open_teacher_vectors"]

PathLike = str | os.PathLike

JSONL_SUFFIXES = (".jsonl", ".json")
TEXT_SUFFIXES = (*JSONL_SUFFIXES, ".txt")
DISTILLATION_FEATURES = Features({"text": Value("string"), "row": Value("int64")})


def _validate_text_record(record: Any) -> str:
    if not isinstance(record, dict):
        raise ValueError(f'expected a JSON object {{"text": ...}}, got {type(record).__name__}')
    if set(record) != {"text"}:
        raise ValueError(f"expected exactly the key 'text', got keys {sorted(record)}")
    if not isinstance(record["text"], str):
        raise ValueError(f"'text' must be a string, got {type(record['text']).__name__}")
    return record["text"]


def _iter_texts(path: str) -> Iterator[str]:
    if Path(path).suffix.lower() in JSONL_SUFFIXES:
        for _, text in iter_jsonl(path, validate=_validate_text_record):
            yield text
        return
    n_texts = 0
    for line_number, text in iter_lines(path):
        if not text.strip():
            raise DataFormatError(
                path,
                line_number,
                "blank line: in a .txt file every line is one text, aligned with "
                'one row of the teacher vectors (remove it, or use JSONL {"text": ...} lines)',
            )
        n_texts += 1
        yield text
    if n_texts == 0:
        raise DataFormatError(path, None, "no texts: the file is empty")


def _generate_texts(paths: list[str]) -> Iterator[dict[str, Any]]:
    (path,) = paths
    for row, text in enumerate(_iter_texts(path)):
        yield {"text": text, "row": row}


def open_teacher_vectors(path: PathLike) -> np.ndarray:
    """``np.load(path, mmap_mode="r")``, checked to be a 2-D numeric array (texts x dims)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "teacher vectors file not found", str(path))
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataFormatError(path, None, f"not a readable .npy array of teacher vectors ({exc})") from None
    if not isinstance(vectors, np.ndarray):
        raise DataFormatError(path, None, "expected one .npy array of teacher vectors, got an .npz archive")
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        raise DataFormatError(
            path, None, f"teacher vectors must be a 2-D array (texts x dims), got shape {tuple(vectors.shape)}"
        )
    if not (np.issubdtype(vectors.dtype, np.floating) or np.issubdtype(vectors.dtype, np.integer)):
        raise DataFormatError(path, None, f"teacher vectors must be numbers, got dtype {vectors.dtype}")
    return vectors


class TeacherVectors:
    """The ``Dataset.set_transform`` of :func:`load_distillation_data`: adds ``label`` per row.

    ``label`` is the row's teacher vector as a float32 ``torch.Tensor`` (the sentence-transformers
    collator stacks them). The ``.npy`` is memory-mapped on first use in each process and not
    pickled with the dataset (DataLoader workers map it themselves).
    """

    def __init__(self, vectors_path: PathLike):
        self.vectors_path = str(vectors_path)
        self._vectors: np.ndarray | None = None

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = open_teacher_vectors(self.vectors_path)
        return self._vectors

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_vectors": None}

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = np.asarray(batch["row"], dtype=np.int64)
        block = torch.from_numpy(np.array(self.vectors[rows], dtype=np.float32))
        return {"text": batch["text"], "label": list(block.unbind(0))}


def load_distillation_data(
    text_path: PathLike, vectors_path: PathLike, *, cache_dir: PathLike | None = None
) -> Dataset:
    """Texts and teacher vectors as one dataset with columns ``text`` and ``label``.

    ``text_path``: ``.jsonl``/``.json`` (``{"text": ...}`` per line) or ``.txt`` (one text per
    line). ``vectors_path``: a 2-D ``.npy``, row ``i`` for text ``i``, read lazily through a
    memory map (see :class:`TeacherVectors`). Raises :class:`DataFormatError` when the counts
    differ (naming both files and both counts), when the ``.npy`` is not 2-D, and at a bad text line.
    """
    if Path(text_path).suffix.lower() not in TEXT_SUFFIXES:
        raise ValueError(f"text_path must end in one of {list(TEXT_SUFFIXES)}, got {str(text_path)!r}")
    vectors = open_teacher_vectors(vectors_path)
    dataset = dataset_from_files(
        _generate_texts, [text_path], DISTILLATION_FEATURES, kind="distillation", cache_dir=cache_dir
    )
    if len(dataset) != vectors.shape[0]:
        raise DataFormatError(
            text_path,
            None,
            f"{len(dataset)} texts, but {vectors_path} has {vectors.shape[0]} rows of teacher "
            "vectors; they must be aligned one to one (row i of the .npy is the vector of text i)",
        )
    return dataset.with_transform(TeacherVectors(vectors_path), columns=["text", "row"])
