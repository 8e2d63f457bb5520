"""What identifies a local model's weights: a SHA-256 over every byte of every weight file.

Indexes record it in their manifests (a retrained model behind the same path is refused on load)
and the ONNX export cache names its entries with it (a re-saved model is exported again). Both
trust it to change whenever any weight changes, so it hashes whole files: an earlier version
sampled 16 blocks of 64 KiB, and a re-saved classifier head or one changed layer kept the
fingerprint (a stale ONNX model scored 1.68 away from torch). SHA-256 runs at about 1.4 GB/s on
one core here, below disk speed for most disks; each file's hash is kept for the process's life,
keyed on what changes when the file does (path, device, inode, size, mtime, ctime), so repeated
loads of one model hash it once.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
FINGERPRINT_PREFIX = "sha256:"
"""Marks a whole-file fingerprint; a manifest's value without it is the sampled one of earlier versions."""

_file_hashes: dict[tuple[str, int, int, int, int, int], str] = {}
_lock = threading.Lock()


def _file_key(file: Path) -> tuple[str, int, int, int, int, int]:
    stat = file.stat()
    return (str(file.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def file_sha256(file: Path) -> str:
    """The SHA-256 of ``file``'s bytes, hashed once per version of the file in this process."""
    key = _file_key(file)
    with _lock:
        cached = _file_hashes.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    if _file_key(file) == key:  # not rewritten while it was read; otherwise hash it again next time
        with _lock:
            _file_hashes[key] = value
    return value


def weight_files(folder: Path) -> list[Path]:
    """The weight files under a model folder, sorted (the ONNX cache inside it is not weights)."""
    return sorted(p for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file())


def weights_fingerprint(path: str | os.PathLike[str]) -> str | None:
    """A fingerprint of a local model's weights (``None`` for a hub id or a folder without weight
    files): ``"sha256:"`` and the SHA-256 over each weight file's relative name, size and SHA-256."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    files = weight_files(folder)
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(folder)}:{file.stat().st_size}:{file_sha256(file)};".encode())
    return FINGERPRINT_PREFIX + digest.hexdigest()


def legacy_weights_fingerprint(path: str | os.PathLike[str]) -> str | None:
    """The sampled fingerprint that indexes saved before whole-file fingerprints recorded (16 blocks
    of 64 KiB per file; ``.gguf`` files were not counted), so that those indexes still load."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    files = [p for p in weight_files(folder) if p.suffix != ".gguf"]
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(folder)}:{size};".encode())
        with open(file, "rb") as f:
            for i in range(16):
                f.seek(size * i // 16)
                digest.update(f.read(65536))
    return digest.hexdigest()[:16]


def same_weights(recorded: str, path: str | os.PathLike[str]) -> tuple[bool, str | None]:
    """Whether the weights at ``path`` are those ``recorded`` names, and the fingerprint compared.

    A recorded legacy (sampled) fingerprint is compared with the legacy fingerprint: it is all
    such a manifest knows, so it catches only what sampling catches.
    """
    current = weights_fingerprint(path) if recorded.startswith(FINGERPRINT_PREFIX) else legacy_weights_fingerprint(path)
    return current is None or current == recorded, current
