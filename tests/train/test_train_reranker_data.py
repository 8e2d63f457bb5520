"""Reranker training data: the four line formats, errors with file:line, the label rule, and
groups drawn anew every epoch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rag_retrieval_train.data import DataFormatError, EpochResampleCallback
from rag_retrieval_train.data.reranker_data import (
    GroupDrawer,
    group_view,
    label_scale,
    load_reranker_examples,
    pointwise_view,
)


def write(tmp_path: Path, rows: list, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


MIXED = [
    {"query": "q1", "content": "d1", "label": 3},
    {"query": "q2", "pos": ["p1", "p2"], "neg": ["n1"]},
    {"query": "q3", "hits": [{"content": "a", "label": 0}, {"content": "b", "label": 2}, {"content": "c", "label": 1}]},
    {"query": "q4", "content": "d4", "score": -1.5},
]


def test_every_format_loads_into_one_row_layout(tmp_path):
    ds = load_reranker_examples(write(tmp_path, MIXED), cache_dir=tmp_path / "cache")
    assert ds["docs"] == [["d1"], ["p1", "p2", "n1"], ["a", "b", "c"], ["d4"]]
    assert ds["labels"] == [[3.0], [1.0, 1.0, 0.0], [0.0, 2.0, 1.0], []]
    assert ds["scores"] == [[], [], [], [-1.5]]
    assert ds["line_number"] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "line, message",
    [
        ({"query": "q", "content": "d"}, "needs 'label'"),
        ({"query": "q", "content": "d", "label": -1}, "must be >= 0"),
        ({"query": "q", "content": "d", "label": "1"}, "must be a number"),
        ({"query": "q", "content": "d", "pos": ["x"], "label": 1}, "exactly one of"),
        ({"query": "", "content": "d", "label": 1}, "non-empty string"),
        ({"query": "q", "hits": [{"content": "a", "label": 1}, {"content": "b", "score": 1}]}, "same keys"),
        ({"query": "q", "hits": [{"content": "a"}]}, r"hits\[0\] needs 'label' or 'score'"),
        ({"query": "q", "hits": [{"content": "a", "grade": 1}]}, "unknown key"),
        ({"query": "q", "pos": [], "neg": ["n"]}, "non-empty"),
        ({"query": "q", "hits": [{"content": "a", "label": 1}], "neg": ["n"]}, "'neg' goes with 'pos'"),
        ({"query": "q", "content": "d", "label": 1, "extra": 1}, "unknown key"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, [MIXED[0], line])
    with pytest.raises(DataFormatError, match=rf"data\.jsonl:2: .*{message}"):
        load_reranker_examples(path, cache_dir=tmp_path / "cache")


def test_label_rule_divides_by_the_largest_label(tmp_path):
    ds = load_reranker_examples(write(tmp_path, MIXED[:3]), cache_dir=tmp_path / "cache")
    assert label_scale(ds) == 3.0
    assert label_scale(ds, max_label=4) == 4.0
    with pytest.raises(DataFormatError, match=r"data\.jsonl:1: label 3.0 is above max_label=2"):
        label_scale(ds, max_label=2)
    binary = load_reranker_examples(write(tmp_path, [MIXED[1]], "b.jsonl"), cache_dir=tmp_path / "cache")
    assert label_scale(binary) == 1.0
    flat = pointwise_view(ds, "labels", scale=3.0)
    assert flat["query"] == ["q1", "q2", "q2", "q2", "q3", "q3", "q3"]
    assert flat["label"] == pytest.approx([1.0, 1 / 3, 1 / 3, 0.0, 0.0, 2 / 3, 1 / 3])


def test_pointwise_view_of_teacher_scores_needs_scores_on_every_line(tmp_path):
    ds = load_reranker_examples(write(tmp_path, MIXED), cache_dir=tmp_path / "cache")
    with pytest.raises(DataFormatError, match=r"data\.jsonl:1: .*teacher scores"):
        pointwise_view(ds, "scores")


def test_groups_put_a_top_label_first_and_are_redrawn_each_epoch(tmp_path, caplog):
    rows = [{"query": f"q{i}", "pos": [f"p{i}a", f"p{i}b"], "neg": [f"n{i}_{j}" for j in range(6)]} for i in range(20)]
    rows.append({"query": "no positive", "hits": [{"content": "x", "label": 0}, {"content": "y", "label": 0}]})
    ds = load_reranker_examples(write(tmp_path, rows), cache_dir=tmp_path / "cache")
    callback = EpochResampleCallback()
    with caplog.at_level(logging.WARNING):
        view = group_view(ds, "labels", 4, seed=1, epochs=callback)
    assert "1 of 21 line(s) (the first at" in caplog.text and "data.jsonl:21" in caplog.text
    assert len(view) == 20
    epoch0 = [view[i] for i in range(20)]
    for row in epoch0:
        assert row["docs"][0].startswith("p") and all(d.startswith("n") for d in row["docs"][1:])
        assert row["labels"] == [1.0, 0.0, 0.0, 0.0] and len(set(row["docs"])) == 4
    assert [view[i] for i in range(20)] == epoch0, "the same epoch draws the same groups"

    class State:
        epoch = 1

    callback.on_epoch_begin(None, State(), None)
    epoch1 = [view[i] for i in range(20)]
    assert epoch1 != epoch0
    assert sum(a["docs"] != b["docs"] for a, b in zip(epoch0, epoch1)) >= 15


def test_graded_groups_keep_graded_targets(tmp_path):
    ds = load_reranker_examples(write(tmp_path, [MIXED[2]]), cache_dir=tmp_path / "cache")
    row = group_view(ds, "labels", 3, scale=2.0)[0]
    assert row["docs"][0] == "b" and row["labels"][0] == 1.0
    assert sorted(row["labels"][1:]) == [0.0, 0.5]


def test_teacher_groups_are_sorted_by_teacher_score_and_short_rows_repeat(tmp_path):
    drawer = GroupDrawer("scores", 4)
    import random

    docs, values = drawer.draw(["a", "b", "c"], [0.1, 2.0, -1.0], random.Random(0))
    assert docs[:1] == ["b"] and len(docs) == 4 and set(docs) == {"a", "b", "c"}
    assert values == sorted(values, reverse=True)


def test_labelled_teacher_groups_put_a_labelled_positive_first_with_teacher_scores(tmp_path, caplog):
    """distill_kl_ce's groups: drawn by label (the positive first even when the teacher ranks a
    negative above it), targets the teacher's scores of the drawn documents."""
    hits = [{"content": f"d{j}", "label": int(j == 3), "score": float(10 - j)} for j in range(6)]
    rows = [{"query": f"q{i}", "hits": hits} for i in range(5)]
    rows.append({"query": "no positive", "hits": [{"content": "x", "label": 0, "score": 1.0}] * 2})
    ds = load_reranker_examples(write(tmp_path, rows), cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        view = group_view(ds, "scores", 4, by_label=True)
    assert "1 of 6 line(s)" in caplog.text and "no document labelled above another" in caplog.text
    assert len(view) == 5
    for row in (view[i] for i in range(5)):
        assert row["docs"][0] == "d3" and "d3" not in row["docs"][1:]
        assert row["labels"] == [10.0 - int(d[1:]) for d in row["docs"]]
    unlabelled = [{"query": "q", "hits": [{"content": "a", "score": 1.0}, {"content": "b", "score": 0.0}]}]
    ds = load_reranker_examples(write(tmp_path, unlabelled, "unlabelled.jsonl"), cache_dir=tmp_path / "cache2")
    with pytest.raises(DataFormatError, match=r"unlabelled\.jsonl:1: .*labels"):
        group_view(ds, "scores", 2, by_label=True)
