"""Running a batch job's shards: in this process (``engine="local"``, the default) or on Ray Data
(``engine="ray"``, a local Ray cluster or the one ``RAY_ADDRESS`` names). Both run the same
:class:`JobSpec` worker on the same shards and write the same parts, so their outputs are equal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from . import shards as shard_files
from .spec import JobSpec, ShardRunner

logger = logging.getLogger(__name__)

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")


@dataclass
class JobResult:
    """What :func:`run_job` did: the output folder, its shards, and the ones this run computed."""

    output: Path
    shards: int
    ran: list[int] = field(default_factory=list)
    """Numbers of the shards computed by this run (the others were finished before it)."""
    rows: int = 0

    def read(self) -> Iterator[dict[str, Any]]:
        """The output rows, in input order."""
        return shard_files.read_output(self.output)


def _check_positive(value: Any, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def run_job(
    spec: JobSpec,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    engine: Engine = "local",
    rows_per_shard: int = 1000,
    output_format: str = "jsonl",
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float | None = None,
    show_progress_bar: bool = True,
) -> JobResult:
    """Run ``spec`` over ``inputs`` into the job folder ``output``, skipping the shards finished before.

    Args:
        spec: the job (e.g. :class:`~rag_retrieval_integrations.batch.EncodeJob`, :class:`ScoreJob`).
        inputs: a JSONL or Parquet file, a folder of them, or a list.
        output: the job folder (parts + ``job.json``); an existing one of the same job continues.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data; ``pip install 'rag-retrieval[ray]'``).
        rows_per_shard: rows per shard: the unit of resumption and of work sent to a worker.
        output_format: ``"jsonl"`` or ``"parquet"``.
        workers: Ray model actors (default: as many as the cluster's CPUs or GPUs allow); local: 1.
        cpus_per_worker, gpus_per_worker: Ray resources of each actor (its torch threads follow its CPUs);
            ``gpus_per_worker`` default: 1 on a cluster with GPUs (one model per device), else 0.
        show_progress_bar: a progress bar over shards.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if output_format not in shard_files.FORMATS:
        raise ValueError(f"output_format must be one of {list(shard_files.FORMATS)}, got {output_format!r}")
    _check_positive(workers, "workers")
    _check_positive(cpus_per_worker, "cpus_per_worker")
    if gpus_per_worker is not None and (isinstance(gpus_per_worker, bool) or gpus_per_worker < 0):
        raise ValueError(f"gpus_per_worker must be >= 0, got {gpus_per_worker!r}")
    if engine == "ray":
        from .ray_runner import require_ray

        require_ray()  # before any work: a missing extra is said at once
    folder = Path(output)
    files = shard_files.input_files(inputs)
    planned = shard_files.plan_shards(files, rows_per_shard)
    shard_files.open_folder(folder, shard_files.manifest(spec.job, spec.settings(), files, planned, output_format))
    done = shard_files.finished(folder, planned, output_format)
    pending = [shard for shard in planned if shard.number not in done]
    if done:
        logger.info(
            "%s: %d of %d shards were finished before; running the other %d",
            folder,
            len(done),
            len(planned),
            len(pending),
        )
    result = JobResult(folder, len(planned), [shard.number for shard in pending], sum(s.rows for s in pending))
    if not pending:
        return result
    progress = tqdm(
        total=len(planned), initial=len(done), desc=f"{spec.job} shards", unit="shard", disable=not show_progress_bar
    )
    with progress:
        if engine == "local":
            run_shard = ShardRunner(spec, str(folder), output_format)
            for shard in pending:
                run_shard.run(shard)
                progress.update(1)
        else:
            from .ray_runner import run_on_ray

            run_on_ray(
                spec,
                pending,
                str(folder),
                output_format,
                workers=workers,
                cpus_per_worker=cpus_per_worker,
                gpus_per_worker=gpus_per_worker,
                on_done=lambda: progress.update(1),
            )
    return result
