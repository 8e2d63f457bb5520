"""Checks of a caller's options, shared by models, indexes and framework adapters: a positive
integer, a finite score threshold, and the "did you mean" line for an unknown option name. (The
checks of the texts themselves are in :mod:`.text.inputs`.)"""

from __future__ import annotations

import difflib
import math
from typing import Any


def check_score_threshold(value: Any, name: str = "score_threshold") -> float | None:
    """``None`` or a finite number: a NaN threshold compares false with every score and drops
    everything without a word, an infinite one keeps all or nothing."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number or None, got {value!r}")
    return float(value)


def check_positive_int(value: Any, name: str) -> int:
    """``value`` when it is an int above zero (``True`` is not one), else a ``ValueError`` naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def unknown_options(unknown: list[str], accepted: set[str]) -> str:
    """``'max_lenght' (did you mean 'max_length'?)``, for each unknown name, and what is accepted."""
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(accepted), n=1, cutoff=0.6)
        named.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return f"{', '.join(named)}; it accepts {sorted(accepted) or 'none'}"
