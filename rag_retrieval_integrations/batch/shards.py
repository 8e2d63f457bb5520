"""The unit of work of a batch job: a shard, a fixed range of rows of one input file.

A job's input is a JSONL or Parquet file, or a folder of them (read in name order). It is cut into
shards of ``rows_per_shard`` rows that never cross a file, numbered in input order. Shard ``n``'s
output is the file ``part-<n>.jsonl`` (or ``.parquet``) in the job's output folder, written to a
temporary name and renamed when complete: a part that exists is finished, so a killed job resumes
by running only the shards without one, and the parts read back in order are the job's output in
input order.

The folder's ``job.json`` records what the parts were made from (the job and its settings, each
input's SHA-256 and row count, the shard size and the format): a folder is only ever continued by
the same job over the same input, never mixed with another's parts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from rag_retrieval_integrations.core.fingerprint import file_sha256
from rag_retrieval_integrations.data_files import DataFormatError

Format = Literal["jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "parquet")
MANIFEST = "job.json"
INPUT_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class Shard:
    """Rows ``start .. stop - 1`` (0-based, blank JSONL lines not counted) of the input file ``source``.

    For JSONL, ``offset`` is the byte where row ``start`` begins and ``first_line`` its 1-based line
    number, so a worker reads its rows without scanning the file before them."""

    number: int
    source: str
    start: int
    stop: int
    offset: int = 0
    first_line: int = 1

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def part_name(self, fmt: str) -> str:
        return part_name(self.number, fmt)

    def as_row(self) -> dict[str, Any]:
        """This shard as a plain row (what the Ray dataset of pending shards holds)."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Shard:
        """The shard of an :meth:`as_row` row as Ray Data gives it back (NumPy scalars made plain)."""
        return cls(
            number=int(row["number"]),
            source=str(row["source"]),
            start=int(row["start"]),
            stop=int(row["stop"]),
            offset=int(row["offset"]),
            first_line=int(row["first_line"]),
        )


def part_name(number: int, fmt: str) -> str:
    """The file of shard ``number``'s output in a job folder."""
    return f"part-{number:05d}.{fmt}"


def input_files(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The input files: a file, a folder's ``*.jsonl``/``*.json``/``*.parquet`` files in name order, or a list."""
    given = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not given:
        raise ValueError("a batch job needs at least one input file")
    files: list[Path] = []
    for item in map(Path, given):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix in INPUT_SUFFIXES and p.is_file())
            if not found:
                raise FileNotFoundError(f"{str(item)!r} holds no .jsonl or .parquet file")
            files += found
        elif item.is_file():
            if item.suffix not in INPUT_SUFFIXES:
                raise ValueError(f"{str(item)!r}: a batch input is .jsonl, .json (JSON lines) or .parquet")
            files.append(item)
        else:
            raise FileNotFoundError(f"batch input {str(item)!r} does not exist")
    return files


def _jsonl_rows(path: Path) -> Iterator[tuple[int, int]]:
    """``(byte offset, 1-based line number)`` of every non-blank line of ``path``."""
    offset = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield offset, number
            offset += len(line)


def plan_shards(files: Sequence[Path], rows_per_shard: int) -> list[Shard]:
    """Every shard of ``files``, in input order."""
    if isinstance(rows_per_shard, bool) or not isinstance(rows_per_shard, int) or rows_per_shard <= 0:
        raise ValueError(f"rows_per_shard must be a positive integer, got {rows_per_shard!r}")
    shards: list[Shard] = []
    for path in files:
        if INPUT_SUFFIXES[path.suffix] == "parquet":
            import pyarrow.parquet as pq

            total = pq.ParquetFile(path).metadata.num_rows
            for start in range(0, total, rows_per_shard):
                stop = min(start + rows_per_shard, total)
                shards.append(Shard(len(shards), str(path), start, stop, 0, start + 1))
            continue
        # one pass, keeping only where each shard starts (a list of every row's offset would not fit at 1e8 rows)
        starts: list[tuple[int, int, int]] = []
        total = 0
        for row, (offset, line) in enumerate(_jsonl_rows(path)):
            if row % rows_per_shard == 0:
                starts.append((row, offset, line))
            total = row + 1
        for start, offset, line in starts:
            shards.append(Shard(len(shards), str(path), start, min(start + rows_per_shard, total), offset, line))
    return shards


def read_shard(shard: Shard) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of each row of ``shard`` (Parquet: row index + 1)."""
    path = Path(shard.source)
    if INPUT_SUFFIXES[path.suffix] == "parquet":
        import pyarrow.parquet as pq

        # only the row groups the shard overlaps are read, not the whole file for every shard
        parquet = pq.ParquetFile(path)
        groups, first, at = [], None, 0
        for group in range(parquet.num_row_groups):
            size = parquet.metadata.row_group(group).num_rows
            if at + size > shard.start and at < shard.stop:
                groups.append(group)
                first = at if first is None else first
            at += size
        table = parquet.read_row_groups(groups).slice(shard.start - (first or 0), shard.rows)
        return list(zip(range(shard.first_line, shard.first_line + shard.rows), table.to_pylist()))
    rows: list[tuple[int, dict[str, Any]]] = []
    with open(path, "rb") as handle:
        handle.seek(shard.offset)
        number = shard.first_line - 1
        for raw in handle:
            number += 1
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError as err:
                raise DataFormatError(path, number, f"is not valid JSON ({err})") from None
            if not isinstance(row, dict):
                raise DataFormatError(path, number, f"must be a JSON object, got {type(row).__name__}")
            rows.append((number, row))
            if len(rows) == shard.rows:
                break
    return rows


def write_part(folder: Path, shard: Shard, rows: Sequence[Mapping[str, Any]], fmt: str) -> Path:
    """Write ``rows`` as ``shard``'s part, atomically: the part exists only once it is complete."""
    target = folder / shard.part_name(fmt)
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            # pa.array infers one struct type from every row (Table.from_pylist reads the first row's keys only)
            table = pa.Table.from_struct_array(pa.array([dict(row) for row in rows])) if rows else pa.table({})
            pq.write_table(table, tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False, default=_plain) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _plain(value: Any) -> Any:
    """NumPy arrays and scalars as JSON (Parquet takes them as they are: float32 vectors stay float32)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def finished(folder: Path, shards: Sequence[Shard], fmt: str) -> set[int]:
    """The numbers of the shards whose part exists in ``folder``."""
    return {shard.number for shard in shards if (folder / shard.part_name(fmt)).exists()}


def manifest(job: str, settings: Mapping[str, Any], files: Sequence[Path], shards: Sequence[Shard], fmt: str) -> dict:
    """What a job folder's parts are made from (see the module doc)."""
    counts: dict[str, int] = {}
    for shard in shards:
        counts[shard.source] = counts.get(shard.source, 0) + shard.rows
    return {
        "job": job,
        "settings": dict(settings),
        "inputs": [
            {"path": str(path.resolve()), "sha256": file_sha256(path), "rows": counts.get(str(path), 0)}
            for path in files
        ],
        "rows_per_shard": max((shard.rows for shard in shards), default=0),
        "shards": len(shards),
        "format": fmt,
    }


def _comparable(record: Mapping[str, Any]) -> dict[str, Any]:
    # where the input lies may change (a copied folder); what it holds may not
    return {**record, "inputs": [{k: v for k, v in item.items() if k != "path"} for item in record["inputs"]]}


def open_folder(folder: Path, record: Mapping[str, Any]) -> None:
    """Create the job folder with ``record``, or check that an existing one was made by the same job."""
    path = folder / MANIFEST
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
            same = _comparable(existing) == _comparable(json.loads(json.dumps(record)))
        except (ValueError, KeyError, TypeError):
            existing, same = None, False
        if not same:
            what = "another job" if existing is None else f"a {existing.get('job')!r} job with other input or settings"
            raise ValueError(
                f"{str(folder)!r} holds the output of {what}; write to another folder, or delete it to start again"
            )
        return
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{str(folder)!r} exists and is not a batch job's folder; give an empty or new folder")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``job.json`` of a job folder."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{str(folder)!r} is not a batch job's folder (no {MANIFEST})")
    return json.loads(path.read_text(encoding="utf-8"))


def read_output(folder: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every output row of a finished job folder, in input order."""
    folder = Path(folder)
    record = read_manifest(folder)
    fmt = record["format"]
    parts = [folder / part_name(n, fmt) for n in range(record["shards"])]
    missing = [p.name for p in parts if not p.exists()]
    if missing:
        raise ValueError(
            f"{str(folder)!r} is an unfinished job ({len(missing)} of {len(parts)} parts missing, e.g. "
            f"{missing[0]}): run the job again to finish it"
        )
    for part in parts:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            # a Parquet part has one schema: a field some rows lack is null in the others; absent again here
            for row in pq.read_table(part).to_pylist():
                yield {key: value for key, value in row.items() if value is not None}
        else:
            with open(part, encoding="utf-8") as handle:
                for line in handle:
                    yield json.loads(line)
