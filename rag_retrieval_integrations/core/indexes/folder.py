"""The files of an index folder: data files plus a ``manifest.json`` written last, with every file's
size and SHA-256, so a changed file is refused by name; the model recorded with its weights'
fingerprint; saves are atomic (:func:`atomic_save`), so a save cut short leaves the previous index as
it was, and a folder lock (:func:`folder_lock`) keeps loads and saves of one folder apart."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..fingerprint import same_weights, weights_fingerprint

MANIFEST_FILE = "manifest.json"


class IndexNotFoundError(FileNotFoundError):
    """The index folder does not exist."""


class CorruptIndexError(ValueError):
    """The folder is not an index of this kind, or one of its files is missing, truncated or changed."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_save(folder: str | os.PathLike[str], own_files: Iterable[str]) -> Iterator[Path]:
    """A temporary sibling of ``folder`` to write an index into, put in ``folder``'s place once complete.

    The files are fsynced, the old folder is renamed aside, the new one renamed in, and the old
    one deleted; a save that fails midway (disk full, a kill, an error) leaves the previous index
    as it was, loadable, and removes the temporary folder. ``folder`` may be missing, empty, or an
    index (only ``own_files`` in it); a folder holding anything else is refused rather than
    replaced, so a save never deletes a user's other files.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"cannot save the index to {str(folder)!r}: it is a file")
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in set(own_files) | {MANIFEST_FILE})
        if foreign:
            raise ValueError(
                f"cannot save the index to {str(folder)!r}: it holds other files ({', '.join(foreign[:5])}); "
                "save to a new or empty folder, or to the folder of an index"
            )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.saving-", dir=folder.parent))
    try:
        yield staging
        for path in staging.iterdir():
            _fsync(path)
        # the swap under the folder's lock: a load never sees it half done, and two saves of one
        # folder take turns (the last one wins) instead of renaming each other's folders away
        with folder_lock(folder, shared=False):
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
                os.rename(folder, old)
                os.rename(staging, folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(staging, folder)
        _fsync(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextmanager
def folder_lock(folder: Path, *, shared: bool) -> Iterator[None]:
    """An advisory lock on an index folder, across threads and processes: ``shared`` for a load
    (many at once), exclusive for a save's swap. It is ``flock`` on a sibling file
    ``.<name>.lock``, which stays next to the folder. Where it cannot be taken (no ``fcntl``,
    a read-only parent folder) loads and saves go unlocked, as before."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    lock_path = folder.parent / f".{folder.name}.lock"
    try:
        handle = open(lock_path, "a+b")  # noqa: SIM115 (held for the block, closed below)
    except OSError:
        try:
            handle = open(lock_path, "rb")  # noqa: SIM115
        except OSError:
            yield
            return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # releases the lock


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk; folders cannot be opened for it everywhere."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_manifest(folder: Path, manifest: dict[str, Any], files: Iterable[str]) -> None:
    """Write ``manifest`` plus the size and SHA-256 of each of ``files``; call it after the data files."""
    entries = {name: {"bytes": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)} for name in files}
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "files": entries}, indent=2) + "\n", encoding="utf-8")


def model_location(path: str) -> str:
    """A local model folder as an absolute path (an index saved from ``./model`` loads from anywhere); a hub id as is."""
    return str(Path(path).resolve()) if Path(path).is_dir() else path


def model_record(settings: Mapping[str, Any], model_path: str) -> dict[str, Any]:
    """The manifest's ``model`` entry: the model's settings, its absolute location and its weights' fingerprint."""
    return {**settings, "model": model_location(model_path), "weights_fingerprint": weights_fingerprint(model_path)}


def check_same_weights(settings: Mapping[str, Any], model_path: str, folder: Path) -> None:
    """Refuse a model whose weights changed since the index at ``folder`` was built with it."""
    recorded = settings.get("weights_fingerprint")
    if recorded is None or model_location(model_path) != settings.get("model"):
        return  # an index saved before fingerprints, or the user's choice of another model
    same, current = same_weights(str(recorded), model_path)
    if not same:
        raise CorruptIndexError(
            f"the model at {model_path!r} is not the one the index at {str(folder)!r} was built with: its weights "
            f"changed (fingerprint {current}, the index recorded {recorded}); rebuild the index, or load it with "
            "the original model"
        )


def read_manifest(
    folder: Path,
    *,
    what: str,
    writer: str,
    index_format: str,
    version: int,
    keys: Sequence[str],
    required_files: Sequence[str],
) -> dict[str, Any]:
    """The manifest of ``what`` (``"an MRL index"``) in ``folder``, after checking its format, its
    ``keys``, that it lists ``required_files``, and that every file it lists has the recorded size."""
    if not folder.exists():
        raise IndexNotFoundError(f"{what} folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise CorruptIndexError(f"{str(folder)!r} is a file; {what} is a folder written by {writer}")
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise CorruptIndexError(
            f"{str(folder)!r} is not {what}: it has no {MANIFEST_FILE} (an index is a folder written by "
            f"{writer}; a save that was cut short leaves none)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptIndexError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != index_format:
        raise CorruptIndexError(f"{path} is not the manifest of {what} (format != {index_format!r})")
    if manifest.get("format_version") != version:
        found = manifest.get("format_version")
        raise CorruptIndexError(f"{path} has format_version {found!r}; this version reads {version}")
    for key in (*keys, "files"):
        if key not in manifest:
            raise CorruptIndexError(f"{path} lacks the key {key!r}")
    for name in required_files:
        if name not in manifest["files"]:
            raise CorruptIndexError(f"{path} lists no {name}")
    for name, expected in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise CorruptIndexError(f"{folder} is incomplete: {name} is missing")
        if file.stat().st_size != expected["bytes"]:
            raise CorruptIndexError(
                f"{file} is corrupted: {file.stat().st_size} bytes, the manifest says {expected['bytes']}"
            )
    return manifest


def verify_checksums(folder: Path, manifest: dict[str, Any]) -> None:
    """Every listed file's SHA-256 must equal the manifest's (reads the whole index once)."""
    for name, expected in manifest["files"].items():
        if sha256_file(folder / name) != expected["sha256"]:
            raise CorruptIndexError(
                f"{folder / name} is corrupted: its SHA-256 differs from the one in {MANIFEST_FILE}"
            )


def saved_format(folder: Path) -> str | None:
    """The ``format`` a saved index's manifest names (``None`` without a readable one: ``load`` then says why)."""
    try:
        return json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return None
