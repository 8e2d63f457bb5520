"""Bad input gets a clear error naming the argument; valid edge cases just work."""

from __future__ import annotations

import pytest
import torch

from rag_retrieval_integrations import (
    CheckpointNotFoundError,
    InvalidCheckpointError,
    Reranker,
    UnknownModelTypeError,
    available_model_types,
)


@pytest.fixture(scope="module", params=["bert_cross_encoder", "bi_encoder"])
def ranker(request):
    return Reranker(request.getfixturevalue(request.param), max_length=64)


def test_empty_docs_give_empty_results(ranker):
    assert len(ranker.rank("q", [])) == 0
    assert ranker.compute_score([]) == []
    assert [len(r) for r in ranker.rank_many(["a", "b"], [[], ["x"]])] == [0, 1]
    assert ranker.rank_many([], []) == []


def test_empty_string_document_is_scored_and_keeps_its_index(ranker):
    results = ranker.rank("what is a panda?", ["The giant panda is a bear.", "", "Pandas eat bamboo."])
    assert sorted(results.indices) == [0, 1, 2]
    empty = next(r for r in results if r.index == 1)
    assert empty.text == "" and isinstance(empty.score, float)


def test_empty_string_document_in_split_max_mode(bert_cross_encoder):
    ranker = Reranker(bert_cross_encoder, max_length=64, long_doc="split-max", overlap=4)
    assert len(ranker.compute_score([("q", ""), ("q", "text")])) == 2


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["nested"]])
def test_non_string_document_names_its_position(ranker, bad):
    with pytest.raises(TypeError, match=r"docs\[1\]"):
        ranker.rank("q", ["fine", bad, "fine"])


def test_bare_string_as_docs_is_a_type_error(ranker):
    with pytest.raises(TypeError, match="single str"):
        ranker.rank("q", "a single document")


def test_non_string_query(ranker):
    with pytest.raises(TypeError, match="query"):
        ranker.rank(None, ["doc"])


def test_bad_pairs(ranker):
    with pytest.raises(TypeError, match=r"pairs\[1\]"):
        ranker.compute_score([("q", "d"), "not a pair"])
    with pytest.raises(TypeError, match=r"pairs\[0\]\[1\]"):
        ranker.compute_score([("q", None)])
    assert isinstance(ranker.compute_score(("q", "a single pair")), float)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_bad_batch_size(bert_cross_encoder, ranker, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        Reranker(bert_cross_encoder, batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size"):
        ranker.rank("q", ["d"], batch_size=batch_size)


def test_unknown_model_type_lists_valid_values(bert_cross_encoder):
    with pytest.raises(UnknownModelTypeError, match="valid values") as excinfo:
        Reranker(bert_cross_encoder, model_type="cross_encoder")
    for name in available_model_types():
        assert name in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(CheckpointNotFoundError, match="no-such-model"):
        Reranker(missing)
    with pytest.raises(CheckpointNotFoundError, match="no-such-model"):
        Reranker("./no-such-model")


def test_folder_that_is_not_a_checkpoint_names_the_path(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidCheckpointError, match=str(tmp_path)):
        Reranker(tmp_path)
    with pytest.raises(InvalidCheckpointError, match="is a file"):
        Reranker(tmp_path / "notes.txt")


def test_rank_many_length_mismatch(ranker):
    with pytest.raises(ValueError, match="2 queries and 1 document lists"):
        ranker.rank_many(["a", "b"], [["x"]])
    with pytest.raises(TypeError, match=r"docs_per_query\[0\]"):
        ranker.rank_many(["a"], ["not a list"])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"long_doc": "chunk"}, "long_doc"),
        ({"overlap": -1}, "overlap"),
        ({"min_doc_share": 1.5}, "min_doc_share"),
        ({"max_length": 0}, "max_length"),
        ({"dtype": "int8"}, "dtype"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_bad_options(bert_cross_encoder, options, message):
    with pytest.raises(ValueError, match=message):
        Reranker(bert_cross_encoder, **options)


def test_overlap_larger_than_window_is_refused_at_load(bert_cross_encoder):
    with pytest.raises(ValueError, match="overlap=20"):
        Reranker(bert_cross_encoder, max_length=32, long_doc="split-max", overlap=20)


def test_unknown_option_is_a_type_error(bert_cross_encoder):
    with pytest.raises(TypeError, match="max_len"):
        Reranker(bert_cross_encoder, max_len=64)


@pytest.mark.parametrize("option", ["args", "kwargs", "options", "verbosity"])
def test_the_accepted_options_list_only_real_options(bert_cross_encoder, option):
    """``object.__init__``'s ``*args``/``**kwargs`` were listed as options, and passing them failed deep inside."""
    with pytest.raises(TypeError, match="unexpected option") as err:
        Reranker(bert_cross_encoder, **{option: 1})
    accepted = str(err.value).split("it accepts", 1)[1]
    assert "'args'" not in accepted and "'kwargs'" not in accepted and "'options'" not in accepted
    assert "'max_length'" in accepted


# ---- bad options and text: input, expected error, message fragment --------------------------

BAD_CALLS = [
    # (case, options for Reranker, (query, docs) to rank or None, error type, message fragment)
    ("misspelled option", {"max_lenght": 128}, None, TypeError, r"'max_lenght' \(did you mean 'max_length'\?\)"),
    ("misspelled per-call option", {}, ("q", ["d"], {"normalise": True}), TypeError, r"did you mean 'normalize'"),
    ("min_doc_share not a number", {"min_doc_share": "x"}, None, TypeError, r"min_doc_share must be a number.*'x'"),
    ("cuda without a GPU", {"device": "cuda"}, None, ValueError, r"device='cuda' but CUDA is not available"),
    ("mps without MPS", {"device": "mps"}, None, ValueError, r"device='mps' but MPS is not available"),
    ("lone surrogate in a document", {}, ("q", ["fine", "a\udcff"]), ValueError, r"docs\[1\].*lone surrogate"),
    ("lone surrogate in the query", {}, ("q\udcff", ["fine"]), ValueError, r"query.*lone surrogate.*character 1"),
]


@pytest.mark.parametrize("options, call, error, fragment", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_options_and_text_are_typed_errors_naming_the_argument(bert_cross_encoder, options, call, error, fragment):
    if options.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("needs a GPU-less machine")
    if options.get("device") == "mps" and torch.backends.mps.is_available():
        pytest.skip("needs a machine without MPS")
    with pytest.raises(error, match=fragment):
        ranker = Reranker(bert_cross_encoder, **options)
        query, docs, *per_call = call
        ranker.rank(query, docs, **(per_call[0] if per_call else {}))


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "0.5"])
def test_a_score_threshold_that_is_no_finite_number_is_refused(bi_encoder, threshold):
    """A NaN threshold dropped every document without a word; the shared rerank helper and every
    index search refuse it (the framework retrievers too, at construction)."""
    from rag_retrieval_integrations.adapter_fields import rerank
    from rag_retrieval_integrations.core import MRLIndex

    ranker = Reranker(bi_encoder)
    with pytest.raises((TypeError, ValueError), match="score_threshold"):
        rerank(ranker, "q", ["a", "b"], score_threshold=threshold)
    index = MRLIndex(ranker)
    index.add(["a panda", "a bear"])
    with pytest.raises((TypeError, ValueError), match="score_threshold"):
        index.search("panda", 2, score_threshold=threshold)
