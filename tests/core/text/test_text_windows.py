"""Document windows as text (bi-encoders' split-max): exact substrings that tokenize back to
the tokens they were cut from, covering the whole document with the asked overlap."""

from __future__ import annotations

import pytest
from kit import checkpoints
from transformers import AutoTokenizer

from rag_retrieval_integrations.core.text.text_windows import split_into_windows

# Long words, so a fixed stride lands inside a word (the bug: "##nda" re-tokenized on its own).
# The tiny tokenizers split unseen words into letters, so they read the kit's own corpus.
REAL_DOC = (
    "Photosynthesis characteristically transforms electromagnetic radiation into biochemical "
    "energy; chloroplasts, thylakoid membranes and ribulose-bisphosphate carboxylase participate. "
) * 4
TINY_DOC = " ".join(dict.fromkeys(checkpoints.CORPUS))


def _tokenizers(minilm_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("window-tokenizers")
    checkpoints._bert_tokenizer().save_pretrained(folder / "wordpiece")
    checkpoints.build_xlmr_cross_encoder(folder / "unigram")
    checkpoints.build_decoder_llm(folder / "bytebpe")
    return {
        "minilm": AutoTokenizer.from_pretrained(minilm_path),
        "wordpiece": AutoTokenizer.from_pretrained(folder / "wordpiece"),
        "unigram": AutoTokenizer.from_pretrained(folder / "unigram"),
        "bytebpe": AutoTokenizer.from_pretrained(folder / "bytebpe"),
    }


@pytest.fixture(scope="module")
def tokenizers(minilm_path, tmp_path_factory):
    return _tokenizers(minilm_path, tmp_path_factory)


@pytest.mark.parametrize("name", ["minilm", "wordpiece", "unigram", "bytebpe"])
@pytest.mark.parametrize("window,overlap", [(16, 4), (20, 2), (14, 0)])
def test_windows_tokenize_back_into_their_own_tokens(tokenizers, name, window, overlap):
    tokenizer = tokenizers[name]
    LONG_DOC = REAL_DOC if name == "minilm" else TINY_DOC
    doc_tokens = tokenizer(LONG_DOC, add_special_tokens=False)["input_ids"]
    windows, owner = split_into_windows(tokenizer, [LONG_DOC, "short"], window, overlap)
    assert list(owner).count(1) == 1 and windows[-1] == "short"
    doc_windows = windows[:-1]
    assert len(doc_windows) > 3
    position = 0
    previous_end = 0
    for text in doc_windows:
        assert text in LONG_DOC
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) <= window, f"{text!r} is {len(ids)} tokens, more than the window of {window}"
        # the window is a contiguous run of the document's own tokens
        start = next(s for s in range(position, len(doc_tokens)) if doc_tokens[s : s + len(ids)] == ids)
        assert start <= previous_end, "no token may fall between two windows"
        position, previous_end = start + 1, start + len(ids)
    assert previous_end == len(doc_tokens), "the last window must reach the end of the document"


def test_a_text_that_fits_is_one_unchanged_window(tokenizers):
    windows, owner = split_into_windows(tokenizers["minilm"], ["a short text.", REAL_DOC], 1000, 10)
    assert windows == ["a short text.", REAL_DOC] and list(owner) == [0, 1]


def test_overlap_must_be_smaller_than_the_window(tokenizers):
    with pytest.raises(ValueError, match="overlap=8"):
        split_into_windows(tokenizers["minilm"], [REAL_DOC], 8, 8)
