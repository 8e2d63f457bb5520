"""Embedding training data: JSONL -> Arrow dataset -> per-epoch sampled training rows.

Three steps, each usable alone:

1. :func:`load_examples` validates every line of the JSONL file(s) and writes them to an
   Arrow file on disk (memory-mapped: the data is not held twice in memory). All lines are
   validated here, before any training, so a bad line 9,000 fails at load time.
2. :func:`training_view` checks the examples against a training ``kind`` and ``group_size``
   (errors name the first offending ``file:line``) and returns the dataset with a
   :class:`GroupSampler` transform that builds the columns the losses read
   (see :func:`training_columns`).
3. :class:`EpochResampleCallback` tells the sampler which epoch it is, so the positive and the
   hard negatives are drawn again every epoch, deterministically from
   ``(seed, epoch, line_number)``.

Columns of :func:`load_examples` (one row per example): ``query`` (str), ``pos`` (list[str]),
``neg`` (list[str], ``[]`` when absent), ``scores`` (list[float], ``[]`` unless the line is
in the scored format), ``prompt_for_query`` / ``prompt_for_passage`` (str, ``None`` when
absent: a default prompt may then apply; ``""`` on the line means no prompt), ``source_file``
(the file the line came from) and ``line_number`` (1-based, blank lines counted).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import pyarrow.compute as pc
from datasets import Dataset, Features, Value
from datasets import Sequence as ListOf
from transformers import TrainerCallback

from .arrow import dataset_from_files
from .jsonl import DataFormatError, EmbeddingExample, iter_jsonl

__all__ = [
    "EXAMPLE_FEATURES",
    "KINDS",
    "EmbeddingExample",
    "EpochResampleCallback",
    "GroupSampler",
    "Kind",
    "load_examples",
    "row_rng",
    "training_columns",
    "training_view",
]

logger = logging.getLogger(__name__)

Kind = Literal["infonce", "preference"]
KINDS: tuple[str, ...] = ("infonce", "preference")

EXAMPLE_FEATURES = Features(
    {
        "query": Value("string"),
        "pos": ListOf(Value("string")),
        "neg": ListOf(Value("string")),
        "scores": ListOf(Value("float64")),
        "prompt_for_query": Value("string"),
        "prompt_for_passage": Value("string"),
        "source_file": Value("string"),
        "line_number": Value("int64"),
    }
)

PathLike = str | os.PathLike


def _generate_examples(paths: list[str]) -> Iterator[dict[str, Any]]:
    for path in paths:
        for line_number, example in iter_jsonl(path):
            yield {**example, "source_file": path, "line_number": line_number}


def load_examples(path: PathLike | Sequence[PathLike], *, cache_dir: PathLike | None = None) -> Dataset:
    """Validate every line of a JSONL file (or of several, in order) into an on-disk Arrow dataset.

    Returns a memory-mapped ``datasets.Dataset`` (``dataset.cache_files`` names its Arrow file,
    under ``cache_dir`` or the ``datasets`` cache) with the columns listed in the module
    docstring. Raises :class:`DataFormatError` (``"file:line: reason"``) at the first bad line,
    for an empty file, and ``FileNotFoundError`` for a missing one. An unchanged file is not
    read again: its cache is keyed by path, size and modification time.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ValueError("load_examples needs at least one JSONL file, got an empty list")
    return dataset_from_files(_generate_examples, paths, EXAMPLE_FEATURES, kind="embedding", cache_dir=cache_dir)


def training_columns(kind: Kind, group_size: int) -> list[str]:
    """The columns a :func:`training_view` row has, in order.

    ``"infonce"``: ``query, positive, negative_1 .. negative_{group_size-1}``
    (``group_size=1``: ``query, positive``, in-batch negatives only).
    ``"preference"``: ``query, doc_1 .. doc_{group_size}, label`` (``label``: one float per doc).
    """
    _check_kind(kind, group_size)
    if kind == "infonce":
        return ["query", "positive"] + [f"negative_{i}" for i in range(1, group_size)]
    return ["query"] + [f"doc_{i}" for i in range(1, group_size + 1)] + ["label"]


def row_rng(seed: int, epoch: int, line_number: int) -> random.Random:
    """The random stream of one row in one epoch: the same on every run and in every process.

    The three integers are packed into one (no salted ``hash``); ``seed`` may be any int.
    """
    if epoch < 0 or line_number < 0:
        raise ValueError(f"epoch and line_number must be >= 0, got {epoch} and {line_number}")
    return random.Random(((seed & (2**64 - 1)) << 128) | ((epoch & (2**64 - 1)) << 64) | line_number)


def _check_kind(kind: str, group_size: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if kind == "preference" and group_size < 2:
        raise ValueError(
            f"group_size must be >= 2 for kind='preference' (a score distribution over one document "
            f"carries no signal), got {group_size}"
        )


def _sample_with_repeats(items: list[str], k: int, rng: random.Random) -> list[str]:
    """``k`` of ``items``: without replacement when there are enough, else each item
    ``k // len(items)`` or one more times (a balanced draw with replacement), shuffled."""
    if len(items) >= k:
        return rng.sample(items, k)
    copies, extra = divmod(k, len(items))
    drawn = items * copies + rng.sample(items, extra)
    rng.shuffle(drawn)
    return drawn


class GroupSampler:
    """The ``Dataset.set_transform`` function of :func:`training_view`.

    Builds the :func:`training_columns` of each row from its ``pos``/``neg``/``scores``, drawing
    from ``row_rng(seed, epoch, line_number)``; :meth:`set_epoch` moves it to another epoch.
    Prompts are prepended per row: the line's own ``prompt_for_query``/``prompt_for_passage``,
    else ``query_prompt``/``passage_prompt``.

    - ``"infonce"``: one positive drawn from ``pos``; ``group_size - 1`` negatives from ``neg``,
      without replacement when the row has enough, else every negative repeated evenly.
    - ``"preference"``: ``group_size`` documents of ``pos`` with their ``scores`` as ``label``,
      all of them in file order when the row has exactly ``group_size``, else a subset drawn
      per epoch, kept in file order. (A copy of the dataset without the ``scores`` column, as
      sentence-transformers' ``NoDuplicatesBatchSampler`` makes for its duplicate check, yields
      the documents without ``label``.)

    The epoch lives on this object, in the process that reads the dataset: with DataLoader
    workers it reaches them when they start, i.e. every epoch unless ``persistent_workers``.
    sentence-transformers' ``NoDuplicatesBatchSampler`` works on these rows, but not with
    ``precompute_hashes=True`` (it hashes the stored column names once, not the sampled rows).
    """

    def __init__(
        self,
        kind: Kind,
        group_size: int,
        *,
        seed: int = 0,
        query_prompt: str = "",
        passage_prompt: str = "",
        clip: Callable[[list[str]], list[str]] | None = None,
    ):
        _check_kind(kind, group_size)
        self.clip = clip
        self.kind = kind
        self.group_size = group_size
        self.seed = seed
        self.query_prompt = query_prompt
        self.passage_prompt = passage_prompt
        self.epoch = 0
        self.columns = training_columns(kind, group_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def input_columns(self) -> list[str]:
        extra = ["neg"] if self.kind == "infonce" else ["scores"]
        return ["query", "pos", *extra, "prompt_for_query", "prompt_for_passage", "line_number"]

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {name: [] for name in self.columns}
        for i, query in enumerate(batch["query"]):
            rng = row_rng(self.seed, self.epoch, batch["line_number"][i])
            query_prompt = batch["prompt_for_query"][i]
            passage_prompt = batch["prompt_for_passage"][i]
            query_prompt = self.query_prompt if query_prompt is None else query_prompt
            passage_prompt = self.passage_prompt if passage_prompt is None else passage_prompt
            out["query"].append(query_prompt + query)
            if self.kind == "infonce":
                texts = [rng.choice(batch["pos"][i])]
                if self.group_size > 1:
                    texts += _sample_with_repeats(batch["neg"][i], self.group_size - 1, rng)
                names = self.columns[1:]
            else:
                docs = batch["pos"][i]
                picked = range(len(docs))
                if len(docs) > self.group_size:
                    picked = sorted(rng.sample(picked, self.group_size))
                texts = [docs[j] for j in picked]
                names = self.columns[1:-1]
                if "scores" in batch:
                    out["label"].append([batch["scores"][i][j] for j in picked])
            for name, text in zip(names, texts):
                out[name].append(passage_prompt + text)
        if self.kind == "preference" and "scores" not in batch:
            del out["label"]
        if self.clip is not None:  # a huge text is cut before the collator tokenizes it whole
            out = {name: values if name == "label" else self.clip(values) for name, values in out.items()}
        return out


def _row_lengths(dataset: Dataset, *columns: str) -> Iterator[tuple[str, int, tuple[int, ...]]]:
    """``(source_file, line_number, [list length of each column])`` per row, read in Arrow batches."""
    arrow = dataset.with_format("arrow", columns=[*columns, "source_file", "line_number"])
    for table in arrow.iter(batch_size=10_000):
        lengths = [pc.list_value_length(table[column]).to_pylist() for column in columns]
        yield from zip(table["source_file"].to_pylist(), table["line_number"].to_pylist(), zip(*lengths))


def _check_rows(dataset: Dataset, kind: Kind, group_size: int) -> None:
    """Raise :class:`DataFormatError` at the first row that cannot make a training group."""
    need = group_size - 1
    short, first_short = 0, None
    for source, line, (n_pos, n_neg, n_scores) in _row_lengths(dataset, "pos", "neg", "scores"):
        if kind == "preference":
            if not n_scores:
                raise DataFormatError(
                    source,
                    line,
                    "no 'scores': kind='preference' needs the scored format "
                    '({"query", "pos": [...], "scores": [...]}) on every line',
                )
            if n_pos < group_size:
                raise DataFormatError(
                    source, line, f"{n_pos} scored document(s) but group_size={group_size} needs {group_size}"
                )
            continue
        if n_scores:
            raise DataFormatError(
                source,
                line,
                "a scored line ('scores' given) in kind='infonce' data; train scored data with kind='preference'",
            )
        if need and n_neg == 0:
            raise DataFormatError(
                source,
                line,
                f"no 'neg': group_size={group_size} needs {need} hard negative(s) per query; "
                "add 'neg' to every line, or train with group_size=1 (in-batch negatives only)",
            )
        if n_neg < need:
            short += 1
            first_short = first_short or f"{source}:{line}"
    if short:
        logger.warning(
            "%d example(s) (the first at %s) have fewer than the %d hard negatives group_size=%d needs; "
            "their negatives are repeated to fill the group.",
            short,
            first_short,
            need,
            group_size,
        )


def training_view(
    dataset: Dataset,
    kind: Kind,
    group_size: int,
    seed: int = 0,
    *,
    query_prompt: str = "",
    passage_prompt: str = "",
    epochs: EpochResampleCallback | None = None,
    clip: Callable[[list[str]], list[str]] | None = None,
) -> Dataset:
    """The dataset of :func:`load_examples` as training rows of ``kind`` (a transformed copy).

    Checks every row first (a row that cannot form a group raises :class:`DataFormatError`
    naming its ``file:line``; rows with too few negatives are logged once). Row ``i`` then reads
    as ``dict(zip(training_columns(kind, group_size), ...))``, sampled by a :class:`GroupSampler`
    at epoch 0. ``epochs``: an :class:`EpochResampleCallback` to register the sampler with, so
    that every epoch draws anew (or pass the returned dataset to the callback yourself).
    ``query_prompt``/``passage_prompt`` apply to lines that set no prompt of their own.
    ``clip`` maps each column's texts before they are returned (the trainers pass
    ``clip_for_truncation`` at their ``max_length``: the same tokens, at a bounded cost).
    The input ``dataset`` is left untouched.
    """
    _check_kind(kind, group_size)
    _check_rows(dataset, kind, group_size)
    sampler = GroupSampler(
        kind, group_size, seed=seed, query_prompt=query_prompt, passage_prompt=passage_prompt, clip=clip
    )
    if epochs is not None:
        epochs.add(sampler)
    return dataset.with_transform(sampler, columns=sampler.input_columns())


def _sampler_of(dataset: Any) -> Any:
    """The per-epoch drawer of a dataset: a :class:`GroupSampler` (or any object with
    ``set_epoch``), given directly or as the transform of a dataset."""
    if hasattr(dataset, "set_epoch") and not isinstance(dataset, Dataset):
        return dataset
    transform = getattr(dataset, "format", {}).get("format_kwargs", {}).get("transform")
    if not hasattr(transform, "set_epoch"):
        raise TypeError(
            "EpochResampleCallback takes datasets returned by training_view/group_view (or their drawer), "
            f"got {type(dataset).__name__} with transform {transform!r}"
        )
    return transform


class EpochResampleCallback(TrainerCallback):
    """Draws new positives and hard negatives every epoch: ``trainer.add_callback(...)``.

    ``on_epoch_begin`` sets ``int(state.epoch)`` on the :class:`GroupSampler` of each dataset
    given here, to :meth:`add`, or as ``training_view(..., epochs=callback)``, so epoch ``e``
    samples from ``(seed, e, line_number)``; a run resumed in epoch ``e`` draws what the first
    run drew.
    The sampler is read in the trainer's process; DataLoader workers get its state when they
    start, i.e. at every epoch, so ``dataloader_num_workers=0`` (the default) or non-persistent
    workers are needed: ``dataloader_persistent_workers=True`` with workers is refused.
    """

    def __init__(self, *datasets: Dataset | GroupSampler):
        self.samplers: list[Any] = []
        for dataset in datasets:
            self.add(dataset)

    def add(self, dataset: Any) -> None:
        """Resample this dataset from :func:`training_view` (or this sampler) every epoch too."""
        self.samplers.append(_sampler_of(dataset))

    def set_epoch(self, epoch: int) -> None:
        for sampler in self.samplers:
            sampler.set_epoch(epoch)

    def on_train_begin(self, args, state, control, **kwargs):
        if getattr(args, "dataloader_num_workers", 0) > 0 and getattr(args, "dataloader_persistent_workers", False):
            raise ValueError(
                "per-epoch resampling of hard negatives cannot reach persistent DataLoader workers; "
                "set dataloader_persistent_workers=False (or dataloader_num_workers=0)"
            )

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.set_epoch(int(state.epoch or 0))
