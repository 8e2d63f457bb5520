"""The teacher step of distillation: every (query, candidate) of a reranker JSONL file scored by a teacher
``Reranker`` into a teacher-scores JSONL file, in this process (:func:`score_with_teacher`, resumed after the
last complete line) or as a batch job (:func:`score_with_job`, e.g. on Ray Data, resumed by shard); and the
record of the input a scores file was made from (``<scores>.source.json``)."""

from __future__ import annotations

import json
import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rag_retrieval_integrations.core.fingerprint import file_sha256

from .data.jsonl import DataFormatError, iter_jsonl, iter_lines
from .data.reranker_data import validate_reranker_line

logger = logging.getLogger(__name__)


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
            # one pass over the chunk's pairs; a listwise teacher ranks each line's candidates on their own
            scores = teacher.score_many(
                [ex["query"] for ex in chunk], [ex["docs"] for ex in chunk], batch_size=batch_size
            )
            for ex, line_scores in zip(chunk, scores):
                out.write(json.dumps(_scored_line(ex, line_scores), ensure_ascii=False) + "\n")
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


def score_with_job(
    candidates: str | os.PathLike,
    output: str | os.PathLike,
    *,
    model: str,
    model_type: str | None = None,
    model_options: dict[str, Any] | None = None,
    batch_size: int = 32,
    engine: str = "ray",
    workers: int | None = None,
    rows_per_shard: int = 256,
    show_progress_bar: bool = True,
) -> Path:
    """:func:`score_with_teacher` as a batch job (``engine: ray`` of distill): ``candidates`` scored in shards
    by :class:`~rag_retrieval_integrations.batch.ScoreJob` (any ``Reranker``) into ``<output>.parts/`` (a killed
    run resumes there, finished shards kept), then joined into ``output``: the same lines, and the same
    source record, as :func:`score_with_teacher` writes."""
    from rag_retrieval_integrations.batch import ScoreJob, run_job

    candidates, output = Path(candidates), Path(output)
    job = ScoreJob(
        model, model_type, dict(model_options or {}), batch_size, read_row=_with_layout, write_row=_scored_line
    )
    parts = output.with_name(output.name + ".parts")
    result = run_job(
        job,
        candidates,
        parts,
        engine=engine,
        rows_per_shard=rows_per_shard,
        workers=workers,
        show_progress_bar=show_progress_bar,
    )
    lines = 0
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for row in result.read():
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            lines += 1
    write_scores_source(output, candidates, lines)
    os.replace(tmp, output)
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
