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
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from tqdm.auto import tqdm

from rag_retrieval_integrations.core.fingerprint import file_sha256

from . import run_folder
from .config import ConfigError, key
from .data.jsonl import DataFormatError, iter_jsonl, iter_lines
from .data.reranker_data import validate_reranker_line
from .eval_during_training import load_eval_set
from .losses.reranker_specs import DISTILL_LOSSES, RERANKER_LOSSES
from .losses.specs import choices_summary
from .reranker import RerankerLoss, RerankerTrainConfig, RerankerTrainingRun
from .run_context import naming_key

logger = logging.getLogger(__name__)

TEACHER_SCORES_FILE = "teacher_scores.jsonl"


@dataclass
class DistillTrainConfig(RerankerTrainConfig):
    """Options of ``rag-retrieval-train distill``: the reranker trainer's, plus the teacher's."""

    # a step=all run may be resumed as step=student; the teacher's batch size does not change its scores
    RESUME_FREE_KEYS: ClassVar[frozenset[str]] = RerankerTrainConfig.RESUME_FREE_KEYS | {"step", "teacher_batch_size"}

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
        if self.teacher_batch_size <= 0:
            raise ConfigError(f"teacher_batch_size must be positive, got {self.teacher_batch_size}")

    @property
    def teacher_scores_path(self) -> Path:
        return Path(self.teacher_scores) if self.teacher_scores else Path(self.output_dir) / TEACHER_SCORES_FILE


def _completed_lines(output: Path) -> int:
    """Lines of a previous run's output that are complete; a torn last line is cut off."""
    if not output.exists():
        return 0
    with open(output, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            logger.warning("%s ends with an incomplete line (an interrupted run); it is scored again", output)
            f.truncate(end)
    return data[:end].count(b"\n")


def _scored_line(example: dict[str, Any], scores: list[float]) -> dict[str, Any]:
    labels = example["labels"]
    if not example["grouped"]:
        line: dict[str, Any] = {"query": example["query"], "content": example["docs"][0], "score": scores[0]}
        if labels:
            line["label"] = labels[0]
        return line
    hits = []
    for i, (doc, score) in enumerate(zip(example["docs"], scores)):
        hit: dict[str, Any] = {"content": doc, "score": score}
        if labels:
            hit["label"] = labels[i]
        hits.append(hit)
    return {"query": example["query"], "hits": hits}


def score_with_teacher(
    teacher: Any,
    candidates: str | os.PathLike,
    output: str | os.PathLike,
    *,
    batch_size: int = 32,
    pairs_per_chunk: int = 1024,
    resume: bool = True,
    show_progress_bar: bool = True,
) -> Path:
    """Score every (query, candidate) of ``candidates`` with ``teacher`` into ``output``.

    ``teacher`` is any ``BaseReranker``; ``candidates`` a reranker JSONL file (see
    :mod:`rag_retrieval_train.data.reranker_data`). Scores are the teacher's raw scores. The
    output is written and flushed every ``pairs_per_chunk`` pairs; with ``resume`` an existing
    output is continued after its last complete line (its queries must match the input's),
    otherwise it is overwritten.
    """
    candidates, output = Path(candidates), Path(output)
    total = sum(1 for _, text in iter_lines(candidates) if text.strip())
    done = _completed_lines(output) if resume else 0
    if done:
        check_scores_source(output, candidates)
    if done > total:
        raise DataFormatError(output, None, f"has {done} lines but {candidates} only {total}: not its teacher scores")
    if not done:
        write_scores_source(output, candidates, total)
    output.parent.mkdir(parents=True, exist_ok=True)
    last_written = ""
    if done:
        with open(output, encoding="utf-8") as f:
            for last_written in f:  # noqa: B007 (the loop is for its last value)
                pass
        logger.info("resuming teacher scoring after %d of %d lines", done, total)
    examples = iter_jsonl(candidates, validate=_with_layout)
    for _ in range(done):
        line_number, example = next(examples)
    if done and json.loads(last_written)["query"] != example["query"]:
        raise DataFormatError(
            candidates,
            line_number,
            f"the query differs from line {done} of {output}: that file holds another "
            "input's teacher scores (delete it, or pass resume=False)",
        )
    # one truncation warning for the whole teacher pass, not one per chunk
    scope = teacher.truncation_scope("teacher scoring") if hasattr(teacher, "truncation_scope") else nullcontext()
    with (
        scope,
        open(output, "a" if done else "w", encoding="utf-8") as out,
        tqdm(
            total=total, initial=done, desc="Teacher scoring", unit="query", disable=not show_progress_bar
        ) as progress,
    ):

        def flush(chunk: list[dict[str, Any]]) -> None:
            flat = [(ex["query"], doc) for ex in chunk for doc in ex["docs"]]
            scores = teacher.compute_score(flat, batch_size=batch_size)
            if scores and isinstance(scores[0], list):
                raise ValueError("the teacher gives several scores per pair (several cutoff_layers); choose one layer")
            at = 0
            for ex in chunk:
                n = len(ex["docs"])
                out.write(json.dumps(_scored_line(ex, scores[at : at + n]), ensure_ascii=False) + "\n")
                at += n
            out.flush()
            os.fsync(out.fileno())
            progress.update(len(chunk))

        chunk: list[dict[str, Any]] = []
        pairs = 0
        for _, example in examples:
            chunk.append(example)
            pairs += len(example["docs"])
            if pairs >= pairs_per_chunk:
                flush(chunk)
                chunk, pairs = [], 0
        if chunk:
            flush(chunk)
    return output


SOURCE_SUFFIX = ".source.json"


def scores_source_path(scores: Path) -> Path:
    """Where the record of what ``scores`` was made from lives: ``<scores>.source.json``."""
    return scores.with_name(scores.name + SOURCE_SUFFIX)


def write_scores_source(scores: Path, candidates: Path, lines: int) -> None:
    """Record the input ``scores`` is being made from (before the first score is written)."""
    scores.parent.mkdir(parents=True, exist_ok=True)
    record = {"input": str(candidates.resolve()), "input_sha256": file_sha256(candidates), "input_lines": lines}
    tmp = scores_source_path(scores).with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, scores_source_path(scores))


def check_scores_source(scores: Path, candidates: Path) -> None:
    """Refuse ``scores`` when it was made from another input than ``candidates`` (another content, even
    at the same path and length). A scores file with no record (made by an older version or by hand)
    cannot be checked: a warning says so."""
    path = scores_source_path(scores)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        recorded = str(record["input_sha256"])
    except FileNotFoundError:
        logger.warning(
            "%s has no %s: whether it holds the teacher scores of %s cannot be checked", scores, path.name, candidates
        )
        return
    except (ValueError, KeyError, TypeError) as err:
        raise DataFormatError(
            path, None, f"is not a teacher-scores source record ({err}); delete it and {scores}"
        ) from None
    if recorded != file_sha256(candidates):
        raise DataFormatError(
            scores,
            None,
            f"holds the teacher scores of another input than {str(candidates)!r}: it was made from "
            f"{record.get('input')!r} (SHA-256 {recorded[:12]}...), and {str(candidates)!r} has other content now. "
            "Score the input again (delete the scores file, or give another teacher_scores), or train on the input "
            "the scores were made from",
        )


def _with_layout(record: Any) -> dict[str, Any]:
    """A validated line, remembering whether it was grouped, so the output keeps its layout."""
    return {**validate_reranker_line(record), "grouped": record.get("content") is None}


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
