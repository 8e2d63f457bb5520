"""The Ray Data engine of the batch jobs: the pending shards as a dataset, one block each, mapped by a pool
of model actors (``map_batches`` with a callable class: each actor loads the model once, then takes shard
after shard). On one machine it starts a local Ray cluster; with ``RAY_ADDRESS`` set (``auto``,
``ray://host:10001``) it joins that cluster. On a cluster, the input and output folders must be paths every
node reads and writes (a shared file system).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .shards import Shard
from .spec import JobSpec, ShardRunner

logger = logging.getLogger(__name__)

RAY_EXTRA = "pip install 'rag-retrieval[ray]'"


def require_ray() -> None:
    """Raise an ImportError naming the extra when Ray Data is not installed."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ImportError(f"engine='ray' runs on Ray Data, which is not installed: {RAY_EXTRA}") from err


class ShardActor:
    """A Ray Data actor: builds the job's worker (loads the model) once, then computes each shard it is given."""

    def __init__(self, spec: JobSpec, folder: str, fmt: str, threads: int) -> None:
        import torch

        # each actor owns its CPUs: torch's default (all cores) would oversubscribe them
        torch.set_num_threads(max(1, threads))
        self.runner = ShardRunner(spec, folder, fmt)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[int]]:
        numbers, rows = [], []
        for i in range(len(batch["number"])):
            shard = Shard.from_row({name: values[i] for name, values in batch.items()})
            rows.append(self.runner.run(shard))
            numbers.append(shard.number)
        return {"number": numbers, "rows": rows}


def _pool_size(workers: int | None, cpus: float, gpus: float, pending: int) -> int:
    import ray

    if workers is None:
        resources = ray.cluster_resources()
        workers = int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 1) // cpus)
    return max(1, min(int(workers), pending))


def run_on_ray(
    spec: JobSpec,
    pending: Sequence[Shard],
    folder: str,
    fmt: str,
    *,
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float | None,
    on_done: Callable[[], None],
) -> None:
    """Compute ``pending`` on Ray Data; ``on_done`` is called as each shard's part is written."""
    require_ray()
    import ray
    import ray.data

    owned = not ray.is_initialized()
    if owned:  # RAY_ADDRESS, when set, names the cluster to join; else a local one starts
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # ours counts shards
        if gpus_per_worker is None:  # one model per device where there are devices
            gpus_per_worker = 1.0 if ray.cluster_resources().get("GPU", 0) else 0.0
        size = _pool_size(workers, cpus_per_worker, gpus_per_worker, len(pending))
        logger.info("Ray Data: %d shards on %d model actors", len(pending), size)
        dataset = ray.data.from_items([s.as_row() for s in pending], override_num_blocks=len(pending))
        mapped = dataset.map_batches(
            ShardActor,
            fn_constructor_kwargs={"spec": spec, "folder": folder, "fmt": fmt, "threads": int(cpus_per_worker)},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
        )
        for _ in mapped.iter_rows():
            on_done()
    finally:
        if owned:
            ray.shutdown()
