"""``rag-retrieval-train distill``: score candidates with a teacher reranker, then train a
student reranker on the teacher's scores.

Two steps, run together (``step: all``, the default) or one at a time:

1. ``teacher-scores``: any ``Reranker`` (cross-encoder, LLM, layerwise, zero-shot) scores
   every (query, candidate) of ``train_data`` in batches, with a progress bar, and writes
   ``teacher_scores`` (JSONL, one line per input line, flushed as it goes): grouped lines as
   ``{"query", "hits": [{"content", "score"[, "label"]}, ...]}``, pointwise lines as
   ``{"query", "content", "score"[, "label"]}``. An interrupted run resumes where the output
   file ends. Beside it, ``<teacher_scores>.source.json`` records the input it scored (path, SHA-256
   of its bytes, line count): a scores file is only ever continued, reused or trained on with the
   input it was made from, so an edited ``train_data`` is never trained on with stale scores.
2. ``student``: the reranker trainer on ``teacher_scores`` with a distillation loss
   (``distill_kl``: listwise KL against the teacher's softmax, ``distill_mse``: pointwise MSE
   on sigmoid scores, ``margin_mse``; ``distill_kl_ce``: ``distill_kl`` plus listwise CE on the
   labels that step 1 copies from ``train_data``).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from . import run_folder
from .config import ConfigError, key
from .eval_during_training import load_eval_set
from .losses.reranker_specs import DISTILL_LOSSES, RERANKER_LOSSES
from .losses.specs import choices_summary
from .reranker import RerankerLoss, RerankerTrainConfig, RerankerTrainingRun
from .run_context import naming_key
from .teacher_scores import check_scores_source, score_with_job, score_with_teacher, scores_source_path

__all__ = ["DistillTrainConfig", "DistillTrainingRun", "run_distill", "score_with_teacher", "warn_if_saturated_targets"]

logger = logging.getLogger(__name__)

TEACHER_SCORES_FILE = "teacher_scores.jsonl"


@dataclass
class DistillTrainConfig(RerankerTrainConfig):
    """Options of ``rag-retrieval-train distill``: the reranker trainer's, plus the teacher's."""

    # a step=all run may be resumed as step=student; the teacher's batch size does not change its scores
    RESUME_FREE_KEYS: ClassVar[frozenset[str]] = RerankerTrainConfig.RESUME_FREE_KEYS | {
        "step",
        "teacher_batch_size",
        "engine",
        "engine_workers",
    }

    step: Literal["all", "teacher-scores", "student"] = key(
        "all", "teacher-scores: score train_data with the teacher; student: train on those scores; all: both"
    )
    loss: RerankerLoss = key(DISTILL_LOSSES[0], choices_summary({n: RERANKER_LOSSES[n] for n in DISTILL_LOSSES}))
    teacher_model: str = key("", "the teacher checkpoint (any Reranker; required for step all and teacher-scores)")
    teacher_model_type: str | None = key(None, "the teacher's model_type (null: detected from its checkpoint)")
    teacher_options: dict[str, Any] = key(
        doc="options for the teacher's Reranker, e.g. {max_length: 512}", factory=dict
    )
    teacher_batch_size: int = key(32, "pairs per teacher forward pass")
    teacher_scores: str = key("", "the teacher-scores JSONL file (default: <output_dir>/teacher_scores.jsonl)")
    engine: Literal["local", "ray"] = key(
        "local",
        "where the teacher scores: local (this process) or ray (a batch job on Ray Data, resumable by shard; "
        "pip install 'rag-retrieval[ray]')",
    )
    engine_workers: int | None = key(None, "engine ray: teacher actors (null: one per CPU, or per GPU with a GPU)")

    def validate(self) -> None:
        if self.step == "teacher-scores":
            for name in ("teacher_model", "train_data"):
                if not getattr(self, name):
                    raise ConfigError(f"{name} is required for step=teacher-scores")
            if not (self.teacher_scores or self.output_dir):
                raise ConfigError("set teacher_scores (the output file) or output_dir")
        else:
            super().validate()
            if self.step == "all" and not self.teacher_model:
                raise ConfigError("teacher_model is required for step=all (or run step=student on teacher_scores)")
        if self.loss not in DISTILL_LOSSES:
            raise ConfigError(f"distill trains with one of {list(DISTILL_LOSSES)}, got loss={self.loss!r}")
        if self.engine_workers is not None and self.engine_workers <= 0:
            raise ConfigError(f"engine_workers must be positive, got {self.engine_workers}")
        if self.teacher_batch_size <= 0:
            raise ConfigError(f"teacher_batch_size must be positive, got {self.teacher_batch_size}")

    @property
    def teacher_scores_path(self) -> Path:
        return Path(self.teacher_scores) if self.teacher_scores else Path(self.output_dir) / TEACHER_SCORES_FILE


class DistillTrainingRun(RerankerTrainingRun):
    """The student step: the reranker trainer on the teacher's scores."""

    name: ClassVar[str] = "distill"
    config: DistillTrainConfig

    def training_file(self) -> str:
        # not by rewriting config.train_data: the saved config must stay the one a resume compares with
        return str(self.config.teacher_scores_path)

    def data_files(self) -> dict[str, str]:
        return {**super().data_files(), "teacher_scores": str(self.config.teacher_scores_path)}

    def own_files(self) -> list[Path]:
        scores = self.config.teacher_scores_path  # written by the teacher step, maybe into output_dir
        return [scores, scores_source_path(scores)]

    def metadata(self, model: Any, loss: Any) -> dict[str, Any]:
        return {
            **super().metadata(model, loss),
            "teacher": {"model": self.config.teacher_model, "model_type": self.config.teacher_model_type},
        }


SATURATED_LOGIT = 3.0  # sigmoid(3) = 0.953: past it, a teacher's sigmoid targets barely differ


def warn_if_saturated_targets(scores_path: Path, loss: str) -> float:
    """For ``distill_mse`` (which matches ``sigmoid(teacher score)``), warn when most teacher
    scores are beyond +-3, where those targets are all near 0 or 1 and carry little ranking; returns
    that share (0.0 for the other losses, which read scores through softmax or margins).

    A cross-encoder's logits are centred; a yes-token LLM's ``Yes`` logit is not: the SmolLM2
    teacher of ``benchmarks/distill_llm_wikiqa.py`` scores 95% of WikiQA candidates between 2.95
    and 9.77, and its ``distill_mse`` student kept 68% of its MAP against 96% for ``distill_kl``.
    """
    if loss != "distill_mse":
        return 0.0
    scores: list[float] = []
    with open(scores_path, encoding="utf-8") as handle:  # the teacher step's own file: one JSON object a line
        for line in handle:
            if line.strip():
                record = json.loads(line)
                hits = record.get("hits") or [record]
                scores.extend(float(hit["score"]) for hit in hits if "score" in hit)
    if not scores:
        return 0.0
    share = sum(abs(score) > SATURATED_LOGIT for score in scores) / len(scores)
    if share > 0.5:
        logger.warning(
            "%.0f%% of the teacher's scores in %s are beyond +-%g, where distill_mse's targets "
            "sigmoid(score) are all near 0 or 1: use distill_kl or margin_mse for this teacher "
            "(an uncentred one such as a yes-token LLM), or centre its scores first",
            100 * share,
            scores_path,
            SATURATED_LOGIT,
        )
    return share


def _student_started(output_dir: Path) -> bool:
    """Whether the student step has begun in ``output_dir`` (it saved its config or a checkpoint)."""
    return run_folder.saved_config(output_dir) is not None or bool(run_folder.checkpoints(output_dir))


def run_distill(config: DistillTrainConfig) -> Path:
    """Run the configured step(s); returns the student folder (or the teacher-scores file)."""
    from rag_retrieval_integrations import Reranker

    config.validate()
    scores_path = config.teacher_scores_path
    if config.step == "all":  # before the teacher writes into output_dir, and spends its time scoring
        if config.resume is True and not _student_started(Path(config.output_dir)):
            # killed in the teacher pass: that pass continues where it stopped (as it does without
            # resume), and the student, which never started, trains from its first step
            logger.warning(
                "resume: %s holds no student checkpoint yet: the teacher pass continues where it stopped, then "
                "the student trains from the start",
                config.output_dir,
            )
            config = dataclasses.replace(config, resume=False)
        early = DistillTrainingRun(config)
        early.resume_checkpoint()
        early.check_output_dir()
        if config.eval_data:
            load_eval_set(config)  # a malformed eval set fails now, not after the teacher's pass
    if config.step in ("all", "teacher-scores"):
        if config.engine == "ray":
            score_with_job(
                config.train_data,
                scores_path,
                model=config.teacher_model,
                model_type=config.teacher_model_type,
                model_options=config.teacher_options,
                batch_size=config.teacher_batch_size,
                engine=config.engine,
                workers=config.engine_workers,
                show_progress_bar=not config.disable_progress_bar,
            )
        else:
            with naming_key("teacher_model"):
                teacher = Reranker(config.teacher_model, model_type=config.teacher_model_type, **config.teacher_options)
            score_with_teacher(
                teacher,
                config.train_data,
                scores_path,
                batch_size=config.teacher_batch_size,
                show_progress_bar=not config.disable_progress_bar,
            )
            del teacher
            gc.collect()
        if config.step == "teacher-scores":
            return scores_path
    if not scores_path.exists():
        raise FileNotFoundError(f"teacher scores {str(scores_path)!r} do not exist; run step=teacher-scores first")
    check_scores_source(scores_path, Path(config.train_data))
    warn_if_saturated_targets(scores_path, config.loss)
    return DistillTrainingRun(config).run()
