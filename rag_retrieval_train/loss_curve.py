"""``loss_curve.png``, written by every run: the training loss and, with ``eval_data``, the eval metrics.

The points are the trainer's ``log_history``. transformers logs the loss every ``logging_steps``
steps only, so a run shorter than that logged none and drew no curve; :class:`LogLastStep` logs
the last step too, so that every run with at least one step has a curve, and the curve ends where
the saved model does (transformers evaluates the last step itself, with ``eval_steps``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

LOSS_CURVE_FILE = "loss_curve.png"
# what an evaluation logs besides its metrics: timings, not points of the curve
_EVAL_TIMINGS = ("_runtime", "_samples_per_second", "_steps_per_second")


class LogLastStep(TrainerCallback):
    """Log the loss at the last step (transformers logs every ``logging_steps`` steps only)."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_log = True  # a no-op where this step's loss was logged already
        return control


def curve_points(
    log_history: list[dict[str, Any]],
) -> tuple[list[tuple[int, float]], dict[str, list[tuple[int, float]]]]:
    """``(step, loss)`` of every logged training loss, and ``(step, value)`` of every logged eval metric
    by name (``eval_MAP``...), from ``trainer.state.log_history``."""
    losses = [(entry["step"], float(entry["loss"])) for entry in log_history if "loss" in entry and "step" in entry]
    metrics: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        for name, value in entry.items():
            if name.startswith("eval_") and not name.endswith(_EVAL_TIMINGS) and "step" in entry:
                metrics.setdefault(name, []).append((entry["step"], float(value)))
    return losses, metrics


def plot_loss_curve(
    log_history: list[dict[str, Any]], path: Path, title: str, best_step: int | None = None
) -> Path | None:
    """Training loss against step (left axis) and the eval metrics (right axis, ``best_step`` marked);
    ``None``, with a warning, if no loss was logged."""
    losses, metrics = curve_points(log_history)
    if not losses:
        logger.warning("no training loss was logged (no optimizer step?): no loss curve written")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    marker = "o" if len(losses) < 30 else None
    ax.plot([s for s, _ in losses], [v for _, v in losses], marker=marker, color="tab:blue", label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if metrics:
        right = ax.twinx()
        colors = iter(["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"])
        for name, points in metrics.items():
            right.plot([s for s, _ in points], [v for _, v in points], marker="s", color=next(colors, None), label=name)
        right.set_ylabel("eval metric")
        if best_step is not None:
            right.axvline(best_step, color="gray", linestyle="--", linewidth=1, label=f"best step ({best_step})")
        handles = [h for a in (ax, right) for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles, [str(h.get_label()) for h in handles], loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
