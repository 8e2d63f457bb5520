"""Validated text files -> an Arrow-backed, memory-mapped ``datasets.Dataset`` on disk.

``Dataset.from_generator`` writes the rows to an Arrow file in the datasets cache and maps it,
so the examples live on disk, not twice in memory. The cache key is built from each source
file's path and a hash of its content, so an edited file is read (and validated) again, even a
same-size edit whose modification time was kept (``cp -p``, ``rsync -t``), and an unchanged one is
reused without being parsed again (hashing it reads it once, far faster than parsing and writing).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from datasets import Dataset, Features
from datasets.exceptions import DatasetGenerationError

from .jsonl import DataFormatError

# Bump when the rows written for the same file change, so older caches are not reused.
_FORMAT_VERSION = 2

_CHUNK = 1 << 20


def content_hash(path: Path) -> str:
    """A hash of the file's bytes, read in 1 MiB chunks (constant memory, whatever its size)."""
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(kind: str, paths: Sequence[Path], features: Features) -> str:
    # the path is part of the rows (source_file), the content is what they are parsed from
    sources = [[str(path), str(path.resolve()), content_hash(path)] for path in paths]
    key = json.dumps([_FORMAT_VERSION, kind, sources, repr(features)])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def dataset_from_files(
    generator: Callable,
    paths: Sequence[str | os.PathLike],
    features: Features,
    *,
    kind: str,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Run ``generator(paths=[...])`` once into the Arrow cache and return the mapped dataset.

    A :class:`DataFormatError` (or ``FileNotFoundError``) raised by the generator surfaces as
    itself, not wrapped in ``datasets``' ``DatasetGenerationError``.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "training data file not found", str(path))
    try:
        return Dataset.from_generator(
            generator,
            features=features,
            cache_dir=None if cache_dir is None else str(cache_dir),
            gen_kwargs={"paths": [str(p) for p in paths]},
            fingerprint=_fingerprint(kind, paths, features),
        )
    except DatasetGenerationError as exc:
        if isinstance(exc.__cause__, (DataFormatError, OSError)):
            raise exc.__cause__ from None
        raise
