"""The protocol of a batch job: a picklable :class:`JobSpec` that builds a worker, and :class:`ShardRunner`,
which runs a worker on shards and writes their parts: the body of every engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rag_retrieval_integrations.data_files import DataFormatError

from . import shards as shard_files
from .shards import Shard

Worker = Callable[[list[tuple[int, dict[str, Any]]]], list[dict[str, Any]]]
"""Turns a shard's ``(line number, row)`` pairs into its output rows."""


class RowError(ValueError):
    """A worker's complaint about one input row; reported as ``file:line: reason``."""

    def __init__(self, line_number: int, reason: str) -> None:
        super().__init__(reason)
        self.line_number = line_number
        self.reason = reason

    def __reduce__(self):  # through pickling (Ray workers) with both fields
        return type(self), (self.line_number, self.reason)


class JobSpec(ABC):
    """What a batch job does to a shard: picklable settings, and the worker they build.

    A spec is sent to every worker process; :meth:`worker` runs once there (it loads the model),
    and the worker it returns is called once per shard.
    """

    job: ClassVar[str]

    @abstractmethod
    def worker(self) -> Worker:
        """Build the worker (load the model); runs once in each worker process."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """What the output depends on (recorded in ``job.json``; a folder is continued only with equal settings)."""


class ShardRunner:
    """Runs shards with one worker built from ``spec`` (lazily, once): the body of every engine."""

    def __init__(self, spec: JobSpec, folder: str, fmt: str) -> None:
        self.spec = spec
        self.folder = Path(folder)
        self.fmt = fmt
        self._worker: Worker | None = None

    def run(self, shard: Shard) -> int:
        """Compute ``shard``'s part; returns its row count."""
        if self._worker is None:
            self._worker = self.spec.worker()
        try:
            rows = self._worker(shard_files.read_shard(shard))
        except RowError as err:
            raise DataFormatError(shard.source, err.line_number, err.reason) from None
        shard_files.write_part(self.folder, shard, rows, self.fmt)
        return len(rows)
