"""Reranker training data: JSONL lines -> Arrow rows -> pointwise pairs or per-epoch groups.

Line formats (each line validated on its own; errors name ``file:line``):

- pointwise, labelled:      ``{"query": str, "content": str, "label": number}``
- pointwise, teacher score: ``{"query": str, "content": str, "score": number}``
- grouped, binary:          ``{"query": str, "pos": [str, ...], "neg": [str, ...]}`` (pos label 1, neg 0)
- grouped, listed:          ``{"query": str, "hits": [{"content": str, "label": number, "score": number}, ...]}``
  where every hit has ``label``, ``score`` or both, the same keys on every hit of the line.

Labels are relevance grades ``>= 0``. They are rescaled to ``[0, 1]`` by one rule: divided by
the largest label in the training data (``max_label``), so 0/1 labels stay as they are and
graded labels 0..3 become 0, 1/3, 2/3, 1. A label above ``max_label`` (when it is given) is
an error. Teacher ``score`` values are raw model scores (logits), kept as they are.

Rows of :func:`load_reranker_examples`: ``query``, ``docs`` (list[str]), ``labels``
(list[float], ``[]`` when the line has none), ``scores`` (list[float], ``[]`` when none),
``source_file``, ``line_number``.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from datasets import Dataset, Features, Value
from datasets import Sequence as ListOf

from .arrow import dataset_from_files
from .embedding_data import EpochResampleCallback, row_rng
from .jsonl import DataFormatError, check_object, iter_jsonl, type_name

__all__ = [
    "RERANKER_FEATURES",
    "GroupDrawer",
    "group_view",
    "label_scale",
    "load_reranker_examples",
    "pointwise_view",
    "validate_reranker_line",
]

logger = logging.getLogger(__name__)

RERANKER_KEYS = ("query", "content", "label", "score", "pos", "neg", "hits")
RERANKER_FEATURES = Features(
    {
        "query": Value("string"),
        "docs": ListOf(Value("string")),
        "labels": ListOf(Value("float64")),
        "scores": ListOf(Value("float64")),
        "source_file": Value("string"),
        "line_number": Value("int64"),
    }
)
Target = Literal["labels", "scores"]


def _number(value: Any, where: str, *, label: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {type_name(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{where} must be finite, got {value}")
    if label and value < 0:
        raise ValueError(f"{where} must be >= 0 (a relevance grade), got {value}")
    return float(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {type_name(value)}")
    return value


def _strings(record: dict, key: str) -> list[str]:
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list of strings, got {type_name(value)}")
    return [_text(v, f"{key}[{i}]") for i, v in enumerate(value)]


def validate_reranker_line(record: Any) -> dict[str, Any]:
    """One parsed line as ``{"query", "docs", "labels", "scores"}``; raises ``ValueError(reason)``."""
    check_object(record, RERANKER_KEYS)
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"'query' must be a non-empty string, got {query!r}")
    present = [k for k in ("content", "pos", "hits") if record.get(k) is not None]
    if len(present) != 1:
        raise ValueError(
            "a line needs exactly one of 'content' (pointwise), 'pos'/'neg' (grouped) or 'hits' (grouped), "
            f"found {present or 'none'}"
        )
    kind = present[0]
    if kind != "pos" and record.get("neg") is not None:
        raise ValueError("'neg' goes with 'pos'; put negatives of a 'hits' line in 'hits' with label 0")
    if kind == "content":
        docs = [_text(record["content"], "'content'")]
        has_label, has_score = record.get("label") is not None, record.get("score") is not None
        if not (has_label or has_score):
            raise ValueError("a pointwise line needs 'label' (a relevance grade) or 'score' (a teacher score)")
        labels = [_number(record["label"], "'label'", label=True)] if has_label else []
        scores = [_number(record["score"], "'score'", label=False)] if has_score else []
        return {"query": query, "docs": docs, "labels": labels, "scores": scores}
    for key in ("label", "score"):
        if record.get(key) is not None:
            raise ValueError(f"{key!r} belongs to pointwise lines ('content'); a grouped line gives it per hit")
    if kind == "pos":
        pos, neg = _strings(record, "pos"), _strings(record, "neg")
        if not pos:
            raise ValueError("'pos' must be a non-empty list of strings")
        return {"query": query, "docs": pos + neg, "labels": [1.0] * len(pos) + [0.0] * len(neg), "scores": []}
    hits = record["hits"]
    if not isinstance(hits, list) or not hits:
        raise ValueError(f"'hits' must be a non-empty list of objects, got {hits!r}"[:200])
    docs, labels, scores = [], [], []
    keys = None
    for i, hit in enumerate(hits):
        if not isinstance(hit, dict):
            raise ValueError(f"hits[{i}] must be an object with 'content' and 'label'/'score', got {type_name(hit)}")
        extra = sorted(set(hit) - {"content", "label", "score"})
        if extra:
            raise ValueError(f"hits[{i}] has unknown key(s) {extra}; a hit has 'content', 'label', 'score'")
        docs.append(_text(hit.get("content"), f"hits[{i}].content"))
        hit_keys = tuple(k for k in ("label", "score") if hit.get(k) is not None)
        if not hit_keys:
            raise ValueError(f"hits[{i}] needs 'label' or 'score'")
        if keys is not None and hit_keys != keys:
            raise ValueError(
                f"hits[{i}] has {list(hit_keys)} but hits[0] has {list(keys)}; give the same keys on every hit"
            )
        keys = hit_keys
        if "label" in hit_keys:
            labels.append(_number(hit["label"], f"hits[{i}].label", label=True))
        if "score" in hit_keys:
            scores.append(_number(hit["score"], f"hits[{i}].score", label=False))
    return {"query": query, "docs": docs, "labels": labels, "scores": scores}


def _generate(paths: list[str]) -> Iterator[dict[str, Any]]:
    for path in paths:
        for line_number, row in iter_jsonl(path, validate=validate_reranker_line):
            yield {**row, "source_file": path, "line_number": line_number}


def load_reranker_examples(
    path: str | os.PathLike | Sequence[str | os.PathLike], *, cache_dir: str | os.PathLike | None = None
) -> Dataset:
    """Validate every line of one or more JSONL files into an on-disk Arrow dataset (see module doc)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ValueError("load_reranker_examples needs at least one JSONL file, got an empty list")
    return dataset_from_files(_generate, paths, RERANKER_FEATURES, kind="reranker", cache_dir=cache_dir)


def label_scale(dataset: Dataset, max_label: float | None = None) -> float:
    """The divisor that maps labels to ``[0, 1]``: ``max_label``, else the largest label seen (at least 1)."""
    seen = 0.0
    first_above = None
    for row in dataset.select_columns(["labels", "source_file", "line_number"]).iter(batch_size=10_000):
        for labels, source, line in zip(row["labels"], row["source_file"], row["line_number"]):
            if labels:
                top = max(labels)
                seen = max(seen, top)
                if max_label is not None and top > max_label and first_above is None:
                    first_above = (source, line, top)
    if first_above is not None:
        source, line, top = first_above
        raise DataFormatError(source, line, f"label {top} is above max_label={max_label}")
    if max_label is not None:
        if max_label <= 0:
            raise ValueError(f"max_label must be positive, got {max_label}")
        return float(max_label)
    return max(seen, 1.0)


def _require(dataset: Dataset, target: Target) -> None:
    """Every row must carry the target (labels or teacher scores) the loss trains on."""
    for row in dataset.select_columns([target, "source_file", "line_number"]).iter(batch_size=10_000):
        for values, source, line in zip(row[target], row["source_file"], row["line_number"]):
            if not values:
                what = (
                    "labels ('label', 'pos'/'neg' or hits with 'label')"
                    if target == "labels"
                    else (
                        "teacher scores ('score' on the line or on every hit; make them with `rag-retrieval-train "
                        "distill --step teacher-scores`)"
                    )
                )
                raise DataFormatError(source, line, f"this loss trains on {what}, and the line has none")


def pointwise_view(dataset: Dataset, target: Target, scale: float = 1.0) -> Dataset:
    """One row per (query, document): columns ``query``, ``document``, ``label`` (float).

    ``target="labels"`` gives labels divided by ``scale``; ``"scores"`` the raw teacher scores.
    Grouped lines are flattened into their pairs.
    """
    _require(dataset, target)

    def flatten(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"query": [], "document": [], "label": []}
        for query, docs, values in zip(batch["query"], batch["docs"], batch[target]):
            for doc, value in zip(docs, values):
                out["query"].append(query)
                out["document"].append(doc)
                out["label"].append(value / scale if target == "labels" else value)
        return out

    return dataset.map(flatten, batched=True, remove_columns=dataset.column_names, desc="Flattening pairs")


class GroupDrawer:
    """The ``set_transform`` of :func:`group_view`: draws each row's group anew every epoch.

    Every group has ``group_size`` documents and their targets (``labels``: one float each):

    - ``target="labels"`` (listwise cross-entropy, RankNet, ListNet): document 0 is a
      positive drawn from the row's documents with its highest label, the others are drawn
      from the documents with lower labels, without replacement when there are enough, else
      repeated evenly. Labels are divided by ``scale``.
    - ``target="scores"`` (distillation): ``group_size`` documents drawn from the row without
      replacement (all of them, in file order, when the row has exactly that many), with the
      teacher's raw scores as targets; document 0 is the one the teacher scores highest.
    - ``target="scores", by_label=True`` (labels plus teacher, ``distill_kl_ce``): the documents
      drawn as for ``"labels"`` (a labelled positive first), with the teacher's raw scores.

    Draws come from ``row_rng(seed, epoch, line_number)``: the same in every run and process.
    """

    def __init__(
        self, target: Target, group_size: int, *, seed: int = 0, scale: float = 1.0, by_label: bool = False
    ) -> None:
        if group_size < 2:
            raise ValueError(f"group_size must be at least 2 for a group loss, got {group_size}")
        self.target = target
        self.by_label = by_label
        self.group_size = group_size
        self.seed = seed
        self.scale = scale
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def draw(
        self, docs: list[str], values: list[float], rng: random.Random, labels: list[float] | None = None
    ) -> tuple[list[str], list[float]]:
        """One group: its documents and their targets; ``labels`` choose the documents when ``by_label``."""
        n = self.group_size
        if self.by_label:
            if labels is None:
                raise ValueError("a by_label drawer needs each row's labels")
            picked = self.draw_by_label(labels, rng)
            return [docs[j] for j in picked], [values[j] for j in picked]
        if self.target == "scores":
            picked = list(range(len(docs)))
            if len(docs) > n:
                picked = sorted(rng.sample(picked, n))
            elif len(docs) < n:
                picked = picked + [rng.choice(picked) for _ in range(n - len(docs))]
            picked.sort(key=lambda j: -values[j])
            return [docs[j] for j in picked], [values[j] for j in picked]
        picked = self.draw_by_label(values, rng)
        return [docs[j] for j in picked], [values[j] / self.scale for j in picked]

    def draw_by_label(self, labels: list[float], rng: random.Random) -> list[int]:
        """A document with the top label, then ``group_size - 1`` with lower labels (repeated evenly when too few)."""
        n = self.group_size
        top = max(labels)
        positives = [j for j, v in enumerate(labels) if v == top]
        others = [j for j, v in enumerate(labels) if v < top]
        first = rng.choice(positives)
        if len(others) >= n - 1:
            rest = rng.sample(others, n - 1)
        else:
            copies, extra = divmod(n - 1, len(others))
            rest = others * copies + rng.sample(others, extra)
            rng.shuffle(rest)
        return [first, *rest]

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"query": [], "docs": [], "labels": []}
        all_labels = batch["labels"] if self.by_label else [None] * len(batch["query"])
        rows = zip(batch["query"], batch["docs"], batch[self.target], all_labels, batch["line_number"])
        for query, docs, values, labels, line in rows:
            group_docs, group_values = self.draw(docs, values, row_rng(self.seed, self.epoch, line), labels)
            out["query"].append(query)
            out["docs"].append(group_docs)
            out["labels"].append(group_values)
        return out


def group_view(
    dataset: Dataset,
    target: Target,
    group_size: int,
    *,
    seed: int = 0,
    scale: float = 1.0,
    epochs: EpochResampleCallback | None = None,
    by_label: bool = False,
) -> Dataset:
    """Rows ``{"query", "docs": [group_size docs], "labels": [group_size floats]}``, drawn per epoch.

    Rows that cannot form a group are dropped with one warning naming how many and the first
    ``file:line``: for ``target="labels"`` or ``by_label``, rows where no document is labelled
    above another (no positive, e.g. a WikiQA question without a correct answer); for
    ``"scores"``, rows with a single document. ``epochs``: an :class:`EpochResampleCallback`
    that moves the draw to each new epoch. ``by_label`` (with ``target="scores"``): groups drawn
    by label, targets the teacher's scores (see :class:`GroupDrawer`); every line needs both.
    """
    _require(dataset, target)
    if by_label:
        _require(dataset, "labels")
    drawn_by_label = target == "labels" or by_label

    def usable(batch: dict[str, list]) -> list[bool]:
        if drawn_by_label:
            return [bool(v) and max(v) > min(v) for v in batch["labels"]]
        return [len(v) >= 2 for v in batch["scores"]]

    kept = dataset.filter(usable, batched=True, desc="Checking groups")
    dropped = len(dataset) - len(kept)
    if dropped:
        column = "labels" if drawn_by_label else target
        first = next(
            f"{r['source_file']}:{r['line_number']}"
            for r in dataset.select_columns([column, "source_file", "line_number"])
            if not usable({column: [r[column]]})[0]
        )
        reason = "no document labelled above another" if drawn_by_label else "a single scored document"
        logger.warning(
            "%d of %d line(s) (the first at %s) have %s and are left out of group training",
            dropped,
            len(dataset),
            first,
            reason,
        )
    if len(kept) == 0:
        raise DataFormatError(dataset[0]["source_file"], None, "no line can form a training group (see the warning)")
    short = sum(1 for docs in kept["docs"] if len(docs) < group_size)
    if short:
        logger.warning(
            "%d line(s) have fewer than group_size=%d documents; their documents are repeated", short, group_size
        )
    drawer = GroupDrawer(target, group_size, seed=seed, scale=scale, by_label=by_label)
    if epochs is not None:
        epochs.add(drawer)
    columns = ["query", "docs", target, *(["labels"] if by_label else []), "line_number"]
    return kept.with_transform(drawer, columns=columns)
