"""Whose ``output_dir`` it is, and which of its checkpoints a run resumes from.

A run writes its resolved config to ``output_dir`` before its first step (and again at its end),
so the folder says which run it holds even after a kill. A new run refuses a folder that holds
anything else unless ``overwrite_output_dir`` is set; ``resume`` refuses a folder whose saved config
differs from the current one in a key that changes the result (see ``TrainConfig.RESUME_FREE_KEYS``);
and it takes the newest checkpoint that was completely written: transformers writes
``trainer_state.json`` last, so a save cut short by a kill leaves a ``checkpoint-N`` without it.

The checkpoints exist to resume a run that did not finish: a finished run deletes them (its last
act, after the model, its metadata and its card are written) unless ``keep_checkpoints`` is set, so
its folder holds the model and its metadata only; a failed or killed run keeps them.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .config import RESOLVED_CONFIG_FILE, ConfigError

logger = logging.getLogger(__name__)

TRAINER_STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(folder: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``folder``, newest (highest N) first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, key=lambda item: item[0], reverse=True)]


def incomplete_reason(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from, or ``None`` when it was completely written."""
    state = checkpoint / TRAINER_STATE_FILE
    if not state.is_file():
        return f"no {TRAINER_STATE_FILE} (its save was interrupted)"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"its {TRAINER_STATE_FILE} is cut short (its save was interrupted)"
    return None


def latest_complete_checkpoint(folder: Path) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint in ``folder`` (or ``None``) and a note for each newer one skipped."""
    skipped: list[str] = []
    for checkpoint in checkpoints(folder):
        reason = incomplete_reason(checkpoint)
        if reason is None:
            if skipped:
                logger.warning("resuming from %s, skipping the newer %s", checkpoint, "; ".join(skipped))
            return checkpoint, skipped
        skipped.append(f"{checkpoint.name}: {reason}")
    return None, skipped


def remove_checkpoints(folder: Path) -> list[str]:
    """Delete the ``checkpoint-N`` folders in ``folder`` (optimizer states: for resume only); their names."""
    removed = []
    for checkpoint in checkpoints(folder):
        shutil.rmtree(checkpoint)
        removed.append(checkpoint.name)
    if removed:
        logger.info("the run finished: deleted %s (keep_checkpoints: true keeps them)", ", ".join(removed))
    return removed


def saved_config(folder: Path) -> dict[str, Any] | None:
    """The config a run saved in ``folder``, or ``None`` if there is none (or it cannot be read)."""
    path = folder / RESOLVED_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def check_same_run(folder: Path, saved: dict[str, Any], current: dict[str, Any], free: Iterable[str]) -> None:
    """Raise a :class:`ConfigError` naming each key, outside ``free``, whose saved value differs from the current one.

    Keys only one side holds (a config saved by another version of this package) are not compared.
    """
    free = set(free)
    differences = [
        f"{key}: {saved[key]!r} there, {value!r} now"
        for key, value in current.items()
        if key in saved and key not in free and saved[key] != value
    ]
    if differences:
        raise ConfigError(
            f"resume: {str(folder)!r} holds a run with another config ({'; '.join(differences)}). Resume it with "
            "its values (epochs and max_steps may be raised to train it longer), or start a new run: another "
            "output_dir, or resume: false with overwrite_output_dir: true to replace it"
        )


def earlier_entries(folder: Path, own: Iterable[Path] = ()) -> list[str]:
    """What ``folder`` holds besides ``own`` (files this run wrote before training), sorted."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output_dir {str(folder)!r} is a file, not a folder")
    if not folder.is_dir():
        return []
    keep = {p.resolve() for p in own}
    return sorted(p.name for p in folder.iterdir() if p.resolve() not in keep)


def holds_a_run(folder: Path) -> bool:
    """Whether ``folder`` holds a training run: its saved config or a checkpoint."""
    return (folder / RESOLVED_CONFIG_FILE).is_file() or bool(checkpoints(folder))


def describe(folder: Path, entries: list[str], limit: int = 6) -> str:
    """``entries`` in a message: the checkpoints and the saved config first, then a few others."""
    saved = saved_config(folder)
    first = [e for e in entries if _CHECKPOINT.match(e) or e == RESOLVED_CONFIG_FILE]
    names = first + [e for e in entries if e not in first]
    text = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    if saved is not None and saved.get("trainer"):
        text = f"a {saved['trainer']} run: {text}"
    return text


def refuse_earlier_run(folder: Path, entries: list[str]) -> ConfigError:
    """The error for a new run into a folder that holds ``entries`` of another."""
    return ConfigError(
        f"output_dir {str(folder)!r} is not empty (it holds {describe(folder, entries)}); a new run there would "
        "mix with and delete what it holds. Set resume: true to continue the run it holds, "
        "overwrite_output_dir: true to replace it, or choose another output_dir"
    )


def clear_earlier_run(folder: Path, own: Iterable[Path] = ()) -> None:
    """``overwrite_output_dir``: delete what an earlier run left in ``folder``, except ``own``.

    A folder that holds a run (its config or a checkpoint) is emptied, since its stale model files
    would otherwise be read along with the new ones; a folder of other files is written over as it is.
    """
    entries = earlier_entries(folder, own)
    if not entries:
        return
    if not holds_a_run(folder):
        logger.warning("overwrite_output_dir: %s holds no training run; writing into it, deleting nothing", folder)
        return
    logger.warning("overwrite_output_dir: deleting the earlier run in %s (%s)", folder, describe(folder, entries))
    for name in entries:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
