"""The training data layer: JSONL validation with file:line errors, Arrow-backed loading,
per-epoch sampling of positives and hard negatives, distillation data, and the
sentence-transformers collator and trainer accepting what it produces."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("datasets")

from rag_retrieval_train.data import (
    ALLOWED_KEYS,
    DataFormatError,
    EpochResampleCallback,
    GroupSampler,
    embedding_data,
    iter_jsonl,
    load_distillation_data,
    load_examples,
    training_columns,
    training_view,
)

GOOD = {"query": "what is a panda?", "pos": ["The giant panda is a bear."], "neg": ["Paris is in France."]}


def write_lines(path: Path, lines: list) -> Path:
    """Write JSONL: dicts are dumped, strings written as they are (blank or broken lines)."""
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "hf-cache"


def many_negatives_row(n_neg: int = 20, **extra) -> dict:
    return {"query": "q", "pos": ["p0", "p1", "p2"], "neg": [f"n{i}" for i in range(n_neg)], **extra}


# --------------------------------------------------------------------------------------------
# validation: every error names file:line, blank lines counted


BAD_LINES = {
    "invalid json": ('{"query": "q", "pos": ["p"]', r"invalid JSON: Expecting"),
    "not an object": ('["q", "p"]', r"expected a JSON object, got list"),
    "missing query": ({"pos": ["p"]}, r"missing required key 'query'"),
    "empty query": ({"query": "  ", "pos": ["p"]}, r"'query' must be a non-empty string"),
    "query not str": ({"query": 3, "pos": ["p"]}, r"'query' must be a non-empty string, got 3"),
    "missing pos": ({"query": "q"}, r"missing required key 'pos'"),
    "bare-string pos": ({"query": "q", "pos": "p"}, r"'pos' must be a list of strings, got a bare string"),
    "empty pos": ({"query": "q", "pos": []}, r"'pos' must be a non-empty list"),
    "pos item not str": ({"query": "q", "pos": ["p", 7]}, r"pos\[1\] must be a string, got int"),
    "bare-string neg": ({"query": "q", "pos": ["p"], "neg": "n"}, r"'neg' must be a list of strings, got a bare"),
    "scores length": ({"query": "q", "pos": ["a", "b"], "scores": [1.0]}, r"'scores' has 1 entries but 'pos' has 2"),
    "scores bool": ({"query": "q", "pos": ["a"], "scores": [True]}, r"scores\[0\] must be a number, got bool"),
    "scores string": ({"query": "q", "pos": ["a"], "scores": ["1"]}, r"scores\[0\] must be a number, got str"),
    "scores nan": ('{"query": "q", "pos": ["a"], "scores": [NaN]}', r"scores\[0\] must be a finite number"),
    "scores with neg": ({"query": "q", "pos": ["a"], "scores": [1], "neg": ["n"]}, r"must not have 'neg'"),
    "prompt not str": ({"query": "q", "pos": ["a"], "prompt_for_query": 1}, r"'prompt_for_query' must be a string"),
    "unknown key": ({"query": "q", "pos": ["a"], "label": 1}, r"unknown key\(s\) \[.label.\]; allowed keys: query"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_bad_line_names_file_and_line(tmp_path, cache, case):
    bad, reason = BAD_LINES[case]
    path = write_lines(tmp_path / "train.jsonl", [GOOD, "", bad, GOOD])  # line 2 blank: still counted
    for load in (lambda: list(iter_jsonl(path)), lambda: load_examples(path, cache_dir=cache)):
        with pytest.raises(DataFormatError) as info:
            load()
        assert str(info.value).startswith(f"{path}:3: ")
        assert re.search(reason, str(info.value)), str(info.value)
        assert (info.value.path, info.value.line_number) == (str(path), 3)


def test_unknown_key_lists_every_allowed_key(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"query": "q", "pos": ["a"], "negs": ["n"]}])
    with pytest.raises(DataFormatError, match=", ".join(ALLOWED_KEYS)):
        list(iter_jsonl(path))


def test_invalid_utf8_names_its_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"query": "\xff", "pos": ["a"]}\n')
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(path))}:2: not valid UTF-8"):
        list(iter_jsonl(path))


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file_is_an_error_naming_it(tmp_path, cache, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(path))}: no examples"):
        list(iter_jsonl(path))
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(path))}: no examples"):
        load_examples(path, cache_dir=cache)


def test_missing_file_is_file_not_found_naming_it(tmp_path, cache):
    path = tmp_path / "nope.jsonl"
    for load in (lambda: list(iter_jsonl(path)), lambda: load_examples(path, cache_dir=cache)):
        with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
            load()


def test_lines_are_normalized(tmp_path, cache):
    path = write_lines(
        tmp_path / "t.jsonl",
        [
            {"query": "pair", "pos": ["a"]},
            {"query": "triplet", "pos": ["a"], "neg": ["b", "c"], "prompt_for_query": ""},
            {"query": "scored", "pos": ["a", "b"], "scores": [1, 0.5], "prompt_for_passage": "doc: "},
            {"query": "nulls", "pos": ["a"], "neg": None, "scores": None, "prompt_for_query": None},
        ],
    )
    rows = [example for _, example in iter_jsonl(path)]
    assert rows[0] == {
        "query": "pair",
        "pos": ["a"],
        "neg": [],
        "scores": [],
        "prompt_for_query": None,
        "prompt_for_passage": None,
    }
    assert rows[1]["neg"] == ["b", "c"] and rows[1]["prompt_for_query"] == ""
    assert rows[2]["scores"] == [1.0, 0.5] and isinstance(rows[2]["scores"][0], float)
    assert rows[3] == {**rows[0], "query": "nulls"}
    dataset = load_examples(path, cache_dir=cache)
    assert dataset.column_names == [
        "query",
        "pos",
        "neg",
        "scores",
        "prompt_for_query",
        "prompt_for_passage",
        "source_file",
        "line_number",
    ]
    assert [{k: row[k] for k in rows[0]} for row in dataset] == rows
    assert dataset["line_number"] == [1, 2, 3, 4] and set(dataset["source_file"]) == {str(path)}


# --------------------------------------------------------------------------------------------
# streaming and on-disk storage


def test_large_file_is_streamed_and_backed_by_arrow_on_disk(tmp_path, cache):
    path = tmp_path / "big.jsonl"
    n = 50_000
    with path.open("w") as f:
        for i in range(n - 1):
            f.write(json.dumps({"query": f"q{i}", "pos": [f"p{i}"], "neg": [f"n{i}"]}) + "\n")
        f.write('{"query": "last", "pos": "not a list"}\n')

    stream = iter_jsonl(path)
    assert next(stream) == (
        1,
        {
            "query": "q0",
            "pos": ["p0"],
            "neg": ["n0"],
            "scores": [],
            "prompt_for_query": None,
            "prompt_for_passage": None,
        },
    )
    seen = 1
    with pytest.raises(DataFormatError, match=rf":{n}: 'pos' must be a list of strings, got a bare string"):
        for _ in stream:
            seen += 1
    assert seen == n - 1  # every earlier line was yielded before the last one failed

    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(path))}:{n}: "):  # at load, before training
        load_examples(path, cache_dir=cache)

    with path.open("rb+") as f:  # fix the last line: the edited file is read again, not the old cache
        f.seek(-len(b'"not a list"}\n'), os.SEEK_END)
        f.write(b'["a list"]  }\n')
    dataset = load_examples(path, cache_dir=cache)
    assert len(dataset) == n and dataset[n - 1]["pos"] == ["a list"]
    assert dataset.cache_files and all(Path(f["filename"]).is_file() for f in dataset.cache_files)
    assert Path(dataset.cache_files[0]["filename"]).is_relative_to(cache)
    again = load_examples(path, cache_dir=cache)  # unchanged file: same Arrow file reused
    assert again.cache_files == dataset.cache_files


def test_several_files_keep_their_own_line_numbers(tmp_path, cache):
    a = write_lines(tmp_path / "a.jsonl", [GOOD, GOOD])
    b = write_lines(tmp_path / "b.jsonl", ["", {"query": "q", "pos": ["p"]}])
    dataset = load_examples([a, b], cache_dir=cache)
    assert list(zip(dataset["source_file"], dataset["line_number"])) == [(str(a), 1), (str(a), 2), (str(b), 2)]
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(b))}:2: no 'neg'"):
        training_view(dataset, "infonce", 2)


# --------------------------------------------------------------------------------------------
# per-epoch sampling


@pytest.fixture
def triplets(tmp_path, cache):
    rows = [many_negatives_row(), {"query": "few", "pos": ["fp"], "neg": ["f1", "f2"]}]
    rows += [{"query": f"q{i}", "pos": [f"p{i}"], "neg": [f"x{i}_{j}" for j in range(8)]} for i in range(6)]
    return load_examples(write_lines(tmp_path / "triplets.jsonl", rows), cache_dir=cache)


def negatives(row: dict) -> list[str]:
    return [v for k, v in row.items() if k.startswith("negative_")]


def test_infonce_columns_and_resampling_per_epoch(triplets):
    view = training_view(triplets, "infonce", group_size=5, seed=7)
    callback = EpochResampleCallback(view)
    assert (
        list(view[0])
        == training_columns("infonce", 5)
        == ["query", "positive"] + [f"negative_{i}" for i in range(1, 5)]
    )

    epoch0 = [view[i] for i in range(len(view))]
    assert [view[i] for i in range(len(view))] == epoch0  # same epoch twice: the same draw
    assert view[0:3] == {k: [r[k] for r in epoch0[:3]] for k in epoch0[0]}  # batched = row by row
    callback.set_epoch(1)
    epoch1 = [view[i] for i in range(len(view))]
    assert negatives(epoch1[0]) != negatives(epoch0[0])
    assert [negatives(r) for r in epoch1] != [negatives(r) for r in epoch0]
    callback.set_epoch(0)
    assert [view[i] for i in range(len(view))] == epoch0  # deterministic from (seed, epoch, line)

    for epoch in range(5):
        callback.set_epoch(epoch)
        row = view[0]
        assert row["positive"] in {"p0", "p1", "p2"}
        assert set(negatives(row)) <= {f"n{i}" for i in range(20)}
        assert len(set(negatives(row))) == 4  # without replacement when there are enough
    for i in range(2, len(view)):
        assert set(negatives(view[i])) <= {f"x{i - 2}_{j}" for j in range(8)}

    other_seed = training_view(triplets, "infonce", group_size=5, seed=8)
    assert [negatives(other_seed[i]) for i in range(len(view))] != [negatives(r) for r in epoch0]


def test_callback_follows_the_trainer_epoch(triplets):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    view = training_view(triplets, "infonce", group_size=3)
    callback = EpochResampleCallback(view)
    args = TrainingArguments(output_dir="unused", report_to=[])
    callback.on_epoch_begin(args, TrainerState(epoch=2.0), TrainerControl())
    sampler = view.format["format_kwargs"]["transform"]
    assert isinstance(sampler, GroupSampler) and sampler.epoch == 2
    callback.on_epoch_begin(args, TrainerState(epoch=3.5), TrainerControl())  # resumed mid-epoch
    assert sampler.epoch == 3
    with pytest.raises(TypeError, match="training_view"):
        EpochResampleCallback(triplets)
    persistent = TrainingArguments(
        output_dir="unused", report_to=[], dataloader_num_workers=2, dataloader_persistent_workers=True
    )
    with pytest.raises(ValueError, match="persistent"):
        callback.on_train_begin(persistent, TrainerState(), TrainerControl())


def test_dataloader_workers_see_the_new_epoch(triplets):
    view = training_view(triplets, "infonce", group_size=3, seed=1)
    callback = EpochResampleCallback(view)

    def one_pass(num_workers):
        loader = torch.utils.data.DataLoader(view, batch_size=4, num_workers=num_workers, collate_fn=list)
        return [negatives(row) for batch in loader for row in batch]

    main0 = one_pass(0)
    assert one_pass(2) == main0
    callback.set_epoch(1)
    assert one_pass(2) == one_pass(0) != main0


def test_sampling_does_not_depend_on_the_hash_seed(triplets):
    view = training_view(triplets, "infonce", group_size=4, seed=3)
    EpochResampleCallback(view).set_epoch(2)
    here = [view[i] for i in range(len(view))]
    code = (
        "import json, sys; from rag_retrieval_train.data import *\n"
        "d = load_examples(sys.argv[1], cache_dir=sys.argv[2]); v = training_view(d, 'infonce', 4, 3)\n"
        "EpochResampleCallback(v).set_epoch(2); print(json.dumps([v[i] for i in range(len(v))]))\n"
    )
    source, cache = triplets["source_file"][0], Path(triplets.cache_files[0]["filename"]).parents[3]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, source, str(cache)], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == here


def test_too_few_negatives_are_repeated_with_one_warning(triplets, caplog):
    with caplog.at_level(logging.WARNING, logger=embedding_data.__name__):
        view = training_view(triplets, "infonce", group_size=6)
    warnings = [r for r in caplog.records if "fewer than the 5 hard negatives" in r.getMessage()]
    assert len(warnings) == 1 and "triplets.jsonl:2" in warnings[0].getMessage()
    for epoch in range(4):
        EpochResampleCallback(view).set_epoch(epoch)
        drawn = negatives(view[1])
        assert len(drawn) == 5 and sorted([drawn.count("f1"), drawn.count("f2")]) == [2, 3]  # balanced
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=embedding_data.__name__):
        view[1], view[1]
    assert not caplog.records


def test_rows_without_negatives_need_group_size_one(tmp_path, cache):
    path = write_lines(tmp_path / "mixed.jsonl", [GOOD, {"query": "q", "pos": ["a", "b"]}])
    dataset = load_examples(path, cache_dir=cache)
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(path))}:2: no 'neg': group_size=3 needs 2"):
        training_view(dataset, "infonce", group_size=3)
    pairs = training_view(dataset, "infonce", group_size=1)
    assert list(pairs[1]) == ["query", "positive"] and pairs[1]["positive"] in {"a", "b"}


def test_kind_and_group_size_are_checked(triplets):
    with pytest.raises(ValueError, match=r"kind must be one of \['infonce', 'preference'\]"):
        training_view(triplets, "listwise", 2)
    with pytest.raises(ValueError, match="group_size must be a positive int"):
        training_view(triplets, "infonce", 0)
    with pytest.raises(ValueError, match="group_size must be >= 2 for kind='preference'"):
        training_view(triplets, "preference", 1)


def test_prompts_per_line_and_defaults(tmp_path, cache):
    rows = [
        {"query": "q1", "pos": ["p1"], "neg": ["n1"], "prompt_for_query": "Q: ", "prompt_for_passage": "D: "},
        {"query": "q2", "pos": ["p2"], "neg": ["n2"]},
        {"query": "q3", "pos": ["p3"], "neg": ["n3"], "prompt_for_query": "", "prompt_for_passage": ""},
    ]
    dataset = load_examples(write_lines(tmp_path / "p.jsonl", rows), cache_dir=cache)
    plain = training_view(dataset, "infonce", 2)
    assert plain[0] == {"query": "Q: q1", "positive": "D: p1", "negative_1": "D: n1"}
    assert plain[1] == {"query": "q2", "positive": "p2", "negative_1": "n2"}
    defaults = training_view(dataset, "infonce", 2, query_prompt="query: ", passage_prompt="passage: ")
    assert defaults[0]["query"] == "Q: q1"  # the line's own prompt wins
    assert defaults[1] == {"query": "query: q2", "positive": "passage: p2", "negative_1": "passage: n2"}
    assert defaults[2] == {"query": "q3", "positive": "p3", "negative_1": "n3"}  # "" on the line: no prompt


# --------------------------------------------------------------------------------------------
# scored ("preference") kind


@pytest.fixture
def scored(tmp_path, cache):
    rows = [
        {"query": "exact", "pos": ["a", "b", "c"], "scores": [3, 2, 1], "prompt_for_passage": "d: "},
        {"query": "more", "pos": [f"doc{i}" for i in range(10)], "scores": [i / 10 for i in range(10)]},
    ]
    return load_examples(write_lines(tmp_path / "scored.jsonl", rows), cache_dir=cache)


def test_preference_label_is_aligned_with_the_docs(scored):
    view = training_view(scored, "preference", group_size=3, seed=0)
    assert training_columns("preference", 3) == ["query", "doc_1", "doc_2", "doc_3", "label"]
    assert view[0] == {"query": "exact", "doc_1": "d: a", "doc_2": "d: b", "doc_3": "d: c", "label": [3.0, 2.0, 1.0]}

    callback = EpochResampleCallback(view)
    draws = []
    for epoch in range(4):
        callback.set_epoch(epoch)
        row = view[1]
        docs = [row[f"doc_{i}"] for i in (1, 2, 3)]
        assert row["label"] == [int(d.removeprefix("doc")) / 10 for d in docs]  # each doc with its score
        assert docs == sorted(docs, key=lambda d: int(d[3:])) and len(set(docs)) == 3  # file order, no repeat
        draws.append(docs)
        assert view[0]["label"] == [3.0, 2.0, 1.0]
    assert len({tuple(d) for d in draws}) > 1  # resampled per epoch


def test_preference_needs_scores_and_enough_docs(scored, triplets):
    source = scored["source_file"][0]
    with pytest.raises(DataFormatError, match=rf"^{re.escape(source)}:1: 3 scored document\(s\) but group_size=4"):
        training_view(scored, "preference", group_size=4)
    with pytest.raises(DataFormatError, match=rf"^{re.escape(source)}:1: a scored line .* kind='preference'"):
        training_view(scored, "infonce", group_size=1)
    with pytest.raises(DataFormatError, match=r"triplets.jsonl:1: no 'scores': kind='preference'"):
        training_view(triplets, "preference", group_size=2)


# --------------------------------------------------------------------------------------------
# sentence-transformers: the collator and the trainer take these rows as they are


def test_sentence_transformers_collator_accepts_the_rows(bi_encoder, triplets, scored):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator

    model = SentenceTransformer(str(bi_encoder), device="cpu")
    collator = SentenceTransformerDataCollator(preprocess_fn=model.preprocess)

    infonce = training_view(triplets, "infonce", group_size=3)
    batch = collator([infonce[i] for i in range(4)])
    for column in training_columns("infonce", 3):
        assert batch[f"{column}_input_ids"].shape[0] == 4
        assert f"{column}_attention_mask" in batch
    assert "label" not in batch

    preference = training_view(scored, "preference", group_size=3)
    batch = collator([preference[i] for i in range(2)])
    assert {"query_input_ids", "doc_1_input_ids", "doc_3_input_ids"} <= set(batch)
    assert batch["label"].shape == (2, 3) and batch["label"][0].tolist() == [3.0, 2.0, 1.0]


def test_trainer_resamples_every_epoch(bi_encoder, triplets, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    seen_epochs = set()
    real_rng = embedding_data.row_rng

    def spy(seed, epoch, line_number):
        seen_epochs.add(epoch)
        return real_rng(seed, epoch, line_number)

    monkeypatch.setattr(embedding_data, "row_rng", spy)
    model = SentenceTransformer(str(bi_encoder), device="cpu")
    resampler = EpochResampleCallback()  # as the embedding trainer wires it
    view = training_view(triplets, kind="infonce", group_size=3, seed=0, epochs=resampler)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=2,
        per_device_train_batch_size=4,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        logging_strategy="no",
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=view, loss=MultipleNegativesRankingLoss(model), callbacks=[resampler]
    )
    trainer.train()
    assert seen_epochs == {0, 1}


# --------------------------------------------------------------------------------------------
# distillation data


@pytest.fixture
def teacher(tmp_path) -> Path:
    path = tmp_path / "teacher.npy"
    np.save(path, np.arange(12, dtype=np.float16).reshape(3, 4))
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
def test_distillation_texts_get_their_teacher_vector_lazily(tmp_path, cache, teacher, suffix):
    texts = ["first text", "second text", "third text"]
    path = tmp_path / f"texts{suffix}"
    if suffix == ".jsonl":
        write_lines(path, [{"text": texts[0]}, "", {"text": texts[1]}, {"text": texts[2]}])
    else:
        path.write_text("\n".join(texts) + "\n")
    dataset = load_distillation_data(path, teacher, cache_dir=cache)
    assert dataset["text"] == texts
    row = dataset[1]
    assert list(row) == ["text", "label"] and row["text"] == "second text"
    assert row["label"].dtype == torch.float32 and row["label"].tolist() == [4.0, 5.0, 6.0, 7.0]
    transform = dataset.format["format_kwargs"]["transform"]
    assert isinstance(transform.vectors, np.memmap)  # read from the .npy on demand ...
    assert "label" not in dataset.with_format(None).column_names  # ... never copied into Arrow
    assert pickle.loads(pickle.dumps(transform))._vectors is None  # workers map the file themselves

    from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator

    batch = SentenceTransformerDataCollator(preprocess_fn=lambda texts, **_: {"n": len(texts)})(
        [dataset[i] for i in range(3)]
    )
    assert batch["label"].shape == (3, 4)


def test_distillation_row_count_mismatch_names_both_files(tmp_path, cache, teacher):
    path = write_lines(tmp_path / "texts.jsonl", [{"text": "a"}, {"text": "b"}])
    with pytest.raises(DataFormatError) as info:
        load_distillation_data(path, teacher, cache_dir=cache)
    message = str(info.value)
    assert str(path) in message and str(teacher) in message
    assert "2 texts" in message and "3 rows" in message


def test_distillation_vectors_must_be_2d(tmp_path, cache):
    texts = tmp_path / "t.txt"
    texts.write_text("a\nb\n")
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(2, dtype=np.float32))
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(flat))}: .*2-D array .*got shape \(2,\)"):
        load_distillation_data(texts, flat, cache_dir=cache)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_distillation_data(texts, tmp_path / "missing.npy", cache_dir=cache)


def test_distillation_text_errors_name_the_line(tmp_path, cache, teacher):
    txt = tmp_path / "blank.txt"
    txt.write_text("a\n\nb\n")
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(txt))}:2: blank line"):
        load_distillation_data(txt, teacher, cache_dir=cache)
    jsonl = write_lines(tmp_path / "bad.jsonl", [{"text": "a"}, {"text": "b", "id": 3}])
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(jsonl))}:2: expected exactly the key 'text'"):
        load_distillation_data(jsonl, teacher, cache_dir=cache)
    with pytest.raises(ValueError, match=r"text_path must end in one of"):
        load_distillation_data(tmp_path / "texts.csv", teacher, cache_dir=cache)
