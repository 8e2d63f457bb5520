"""``rag-retrieval-eval`` on damaged input (issue 14): TSV rows with a tab inside a sentence, a BOM,
empty questions, the official WikiQA layout, corrupt weights and an ``--output-dir`` that is a file,
each a clear error naming the place (``file:line``, the model or the folder), never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import rag_retrieval_integrations
from rag_retrieval_integrations.evaluation import load_rerank_set, retrieval_eval
from rag_retrieval_integrations.evaluation.cli import main
from rag_retrieval_train.data.jsonl import DataFormatError

HEADER = "question\tsentence\tlabel\n"
OFFICIAL_HEADER = "QuestionID\tQuestion\tDocumentID\tDocumentTitle\tSentenceID\tSentence\tLabel\n"


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect exit status 2 with no traceback, and return its one error line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("rag-retrieval-eval: error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0]


def write_jsonl_set(path: Path) -> Path:
    row = {"query": "what is a panda?", "candidates": [{"content": "The giant panda is a bear.", "label": 1}]}
    path.write_text(json.dumps(row) + "\n")
    return path


def damaged_copy(model: Path, tmp_path: Path, damage: str) -> Path:
    """A copy of ``model`` whose ``model.safetensors`` is cut to half its size, or all zero bytes."""
    copy = tmp_path / f"{model.name}-{damage}"
    shutil.copytree(model, copy)
    weights = copy / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2] if damage == "half" else bytes(size))
    return copy


# --- the TSV reader -------------------------------------------------------------------------------


def test_tsv_tab_inside_a_sentence_is_an_error_naming_the_line(tmp_path):
    tsv = tmp_path / "dev.tsv"
    # the sentence "Pandas per reserve:<TAB>2" (label 0) once read as the sentence "Pandas per reserve:", label 2
    tsv.write_text(HEADER + "q1\ts1\t1\nq1\tPandas per reserve:\t2\t0\n")
    with pytest.raises(DataFormatError, match=r"dev\.tsv:3: 4 tab-separated fields, the header has 3") as info:
        load_rerank_set(tsv)
    assert info.value.line_number == 3


def test_tsv_with_a_utf8_bom_is_read(tmp_path):
    tsv = tmp_path / "dev.tsv"
    tsv.write_bytes(("\ufeff" + HEADER + "q1\ts1\t0\nq1\ts2\t1\n").encode("utf-8"))
    data = load_rerank_set(tsv)
    assert data.queries == ["q1"] and data.candidates == [["s1", "s2"]] and data.labels == [[0, 1]]


@pytest.mark.parametrize("question", ["", "   "])
def test_tsv_empty_question_is_an_error_naming_the_line(tmp_path, question):
    tsv = tmp_path / "dev.tsv"
    tsv.write_text(HEADER + f"q1\ts1\t1\n{question}\ts2\t0\n")
    with pytest.raises(DataFormatError, match=r"dev\.tsv:3: empty question"):
        load_rerank_set(tsv)


def test_official_wikiqa_layout_groups_by_question_id_in_file_order(tmp_path):
    tsv = tmp_path / "WikiQA-dev.tsv"
    rows = [
        'Q8\thow are glacier caves formed?\tD1\tGlacier cave\tD1-0\tA partly submerged "glacier cave".\t0',
        "Q8\thow are glacier caves formed?\tD1\tGlacier cave\tD1-1\tThe ice facade is approximately 60 m high\t1",
        "Q9\thow much is 1 tablespoon of water\tD2\tTablespoon\tD2-0\tThis tablespoon has a scale.\t0",
        "Q8\thow are glacier caves formed?\tD1\tGlacier cave\tD1-2\tA glacier cave is a cave formed within ice.\t1",
        # the same text under another id is another query: the release's ids are what group candidates
        "Q10\thow much is 1 tablespoon of water\tD2\tTablespoon\tD2-1\tIn Australia it is 20 mL.\t1",
    ]
    tsv.write_bytes(("\ufeff" + OFFICIAL_HEADER + "\n".join(rows) + "\n").encode("utf-8"))
    data = load_rerank_set(tsv)
    assert data.queries == [
        "how are glacier caves formed?",
        "how much is 1 tablespoon of water",
        "how much is 1 tablespoon of water",
    ]
    assert data.candidates[0] == [
        'A partly submerged "glacier cave".',
        "The ice facade is approximately 60 m high",
        "A glacier cave is a cave formed within ice.",
    ]
    assert data.labels == [[0, 1, 1], [0], [1]]


@pytest.mark.parametrize(
    "row, message",
    [
        ("Q1\tq\tD1\tT\tD1-0\tan extra\ttab\t1", r"2: 8 tab-separated fields, the header has 7; a tab inside"),
        ("Q1\t \tD1\tT\tD1-0\ts\t1", r"2: empty question"),
    ],
)
def test_official_wikiqa_layout_bad_rows_name_the_line(tmp_path, row, message):
    tsv = tmp_path / "WikiQA-train.tsv"
    tsv.write_text(OFFICIAL_HEADER + row + "\n")
    with pytest.raises(DataFormatError, match=r"WikiQA-train\.tsv:" + message):
        load_rerank_set(tsv)


def test_jsonl_candidate_with_an_unknown_key_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "set.jsonl"
    good = {"query": "q", "candidates": [{"content": "d", "label": 1}]}
    bad = {"query": "q2", "candidates": [{"content": "d", "label": 0, "contents": "the text meant"}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataFormatError, match=r"set\.jsonl:2: candidates\[0\] has unknown key\(s\) \['contents'\]"):
        load_rerank_set(path)


def test_shared_wikiqa_dev_reads_as_before(shared_data):
    """Guard: the stricter reader still takes the shared copy (header ``question sentence label``)."""
    data = load_rerank_set(shared_data / "wikiqa" / "dev.tsv")
    assert len(data) == 300 and sum(map(len, data.candidates)) == 2743


def test_cli_reports_a_tab_inside_a_sentence_in_one_line(bert_cross_encoder, tmp_path, capsys):
    tsv = tmp_path / "dev.tsv"
    tsv.write_text(HEADER + "q1\tPandas per reserve:\t2\t0\n")
    error = one_line_error(["rerank", "--data", str(tsv), "--model", str(bert_cross_encoder), "--quiet"], capsys)
    assert f"{tsv}:2:" in error


# --- corrupt weights --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["half", "zero"])
def test_rerank_with_corrupt_safetensors_is_a_one_line_error(bert_cross_encoder, tmp_path, capsys, damage):
    model = damaged_copy(bert_cross_encoder, tmp_path, damage)
    data = write_jsonl_set(tmp_path / "set.jsonl")
    error = one_line_error(["rerank", "--data", str(data), "--model", str(model), "--quiet"], capsys)
    assert str(model) in error


@pytest.mark.parametrize("damage", ["half", "zero"])
def test_retrieval_with_corrupt_safetensors_is_a_one_line_error(bi_encoder, tmp_path, capsys, damage):
    pytest.importorskip("faiss")
    model = damaged_copy(bi_encoder, tmp_path, damage)
    squad = {"data": [{"title": "T", "paragraphs": [{"context": "Pandas eat bamboo.", "qas": [{"id": "a", "question": "what do pandas eat?", "answers": []}]}]}]}  # fmt: skip
    data = tmp_path / "squad.json"
    data.write_text(json.dumps(squad))
    argv = ["retrieval", "--data", str(data), "--model", str(model), "--retriever", "embedding", "--quiet"]
    assert str(model) in one_line_error(argv, capsys)


def _raise_safetensor_error(*args, **kwargs):
    from safetensors import SafetensorError

    raise SafetensorError("Error while deserializing header: incomplete metadata, file not fully covered")


def test_rerank_turns_a_raw_safetensors_error_into_one_line_naming_the_model(
    bert_cross_encoder, tmp_path, capsys, monkeypatch
):
    # the loader as it was before it named the file itself: the CLI must not depend on it doing so
    monkeypatch.setattr(rag_retrieval_integrations, "Reranker", _raise_safetensor_error)
    data = write_jsonl_set(tmp_path / "set.jsonl")
    error = one_line_error(["rerank", "--data", str(data), "--model", str(bert_cross_encoder), "--quiet"], capsys)
    assert f"cannot load the model {str(bert_cross_encoder)!r}: Error while deserializing header" in error


def test_retrieval_turns_a_raw_safetensors_error_into_one_line_naming_the_model(
    bi_encoder, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(retrieval_eval, "evaluate_retriever", _raise_safetensor_error)
    squad = {"data": [{"title": "T", "paragraphs": [{"context": "Pandas eat bamboo.", "qas": [{"id": "a", "question": "what do pandas eat?", "answers": []}]}]}]}  # fmt: skip
    data = tmp_path / "squad.json"
    data.write_text(json.dumps(squad))
    argv = ["retrieval", "--data", str(data), "--model", str(bi_encoder), "--retriever", "embedding", "--quiet"]
    assert f"cannot load the model {str(bi_encoder)!r}" in one_line_error(argv, capsys)


# --- --output-dir -----------------------------------------------------------------------------------


@pytest.mark.parametrize("below", [False, True], ids=["is-a-file", "below-a-file"])
@pytest.mark.parametrize("command", ["rerank", "retrieval"])
def test_output_dir_that_is_a_file_fails_before_any_loading(
    bert_cross_encoder, tmp_path, capsys, monkeypatch, command, below
):
    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before --output-dir was checked")

    monkeypatch.setattr(rag_retrieval_integrations, "Reranker", no_loading)
    monkeypatch.setattr(retrieval_eval, "evaluate_retriever", no_loading)
    monkeypatch.setattr(retrieval_eval, "resolve_retriever", no_loading)
    a_file = tmp_path / "results"
    a_file.write_text("not a folder")
    output_dir = a_file / "eval" if below else a_file
    argv = [command, "--data", str(write_jsonl_set(tmp_path / "set.jsonl")), "--model", str(bert_cross_encoder)]
    error = one_line_error([*argv, "--output-dir", str(output_dir), "--quiet"], capsys)
    assert f"--output-dir {str(output_dir)!r}" in error and "not a folder" in error


def test_an_unwritable_result_file_is_a_one_line_error(bert_cross_encoder, tmp_path, capsys):
    output_dir = tmp_path / "eval"
    (output_dir / "eval_rerank.json").mkdir(parents=True)  # a folder where the result file goes
    data = write_jsonl_set(tmp_path / "set.jsonl")
    argv = ["rerank", "--data", str(data), "--model", str(bert_cross_encoder), "--output-dir", str(output_dir)]
    error = one_line_error([*argv, "--quiet", "--option", "max_length=64"], capsys)
    assert f"cannot write the results to {str(output_dir)!r}" in error
