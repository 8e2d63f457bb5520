"""Truncation users can see: one warning per call or index build when a noticeable share is cut."""

from __future__ import annotations

import logging

import pytest
from transformers import AutoTokenizer

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core.indexes.colbert import ColBERTIndex
from rag_retrieval_integrations.core.indexes.mrl import MRLIndex
from rag_retrieval_integrations.core.text.truncation import TruncationStats

faiss = pytest.importorskip("faiss")

QUERY = "what is a panda?"
SHORT = ["The giant panda is a bear.", "Pandas eat bamboo.", "Paris is in France."]
LONG = "The giant panda is a bear native to south central China and it eats bamboo. " * 12
LOGGER = "rag_retrieval_integrations.core.text.truncation"


def truncation_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


@pytest.fixture(scope="module")
def colbert_path(tmp_path_factory):
    from kit import colbert as tc

    return tc.build_tiny_colbert(tmp_path_factory.mktemp("colbert") / "tiny-colbert")


FAMILIES = ["bert_cross_encoder", "xlmr_cross_encoder", "bi_encoder", "decoder_llm", "colbert_path"]


@pytest.mark.parametrize("fixture", FAMILIES)
def test_cut_documents_warn_once_per_call_naming_share_length_and_remedies(request, caplog, fixture):
    max_length = 128 if fixture == "decoder_llm" else 32  # the LLM prompt alone takes about 60 tokens
    ranker = Reranker(request.getfixturevalue(fixture), max_length=max_length)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ranker.rank(QUERY, [LONG, LONG + " Bamboo.", *SHORT])
    (message,) = truncation_warnings(caplog)
    assert "2 of 5 documents (40.0%) were cut" in message and f"max_length={max_length}" in message
    assert "long_doc='split-max'" in message and "raise max_length" in message


@pytest.mark.parametrize("fixture", FAMILIES)
def test_no_warning_when_nothing_is_cut_or_split_max_scores_every_part(request, caplog, fixture):
    path = request.getfixturevalue(fixture)
    max_length = 128 if fixture == "decoder_llm" else 32
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        Reranker(path, max_length=max_length).rank(QUERY, SHORT)
        Reranker(path, max_length=max_length, long_doc="split-max").rank(QUERY, [LONG, *SHORT])
    assert truncation_warnings(caplog) == []


def test_a_small_share_cut_is_not_noticeable(bert_cross_encoder, caplog):
    """One long document among twenty (5%, and a small share of the tokens) is no reason to warn."""
    ranker = Reranker(bert_cross_encoder, max_length=64)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        short = [f"The giant panda number {i} is a bear native to China, eating bamboo." for i in range(19)]
        ranker.rank(QUERY, [*short, LONG[:300]])
    assert truncation_warnings(caplog) == []
    assert ranker.truncation_totals.truncated == 1 and ranker.truncation_totals.documents == 20


def test_counts_are_the_tokens_the_tokenizer_cuts(bert_cross_encoder):
    ranker = Reranker(bert_cross_encoder, max_length=32)
    tokenizer = AutoTokenizer.from_pretrained(bert_cross_encoder)
    ranker.compute_score([(QUERY, LONG), (QUERY, SHORT[0])])
    q = len(tokenizer(QUERY, add_special_tokens=False)["input_ids"])
    long_tokens = len(tokenizer(LONG, add_special_tokens=False)["input_ids"])
    short_tokens = len(tokenizer(SHORT[0], add_special_tokens=False)["input_ids"])
    room = 32 - 3 - q
    assert ranker.truncation_totals == TruncationStats(
        documents=2, truncated=1, tokens=long_tokens + short_tokens, kept_tokens=room + short_tokens
    )


def test_an_index_build_warns_once_for_all_its_chunks(bi_encoder, colbert_path, caplog):
    docs = [LONG] * 150 + SHORT * 50  # 300 documents: more than one 256-document encoding chunk
    for index in (MRLIndex(Reranker(bi_encoder, max_length=32)), ColBERTIndex(Reranker(colbert_path, max_length=32))):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            index.add(docs)
        (message,) = truncation_warnings(caplog)
        assert message.startswith("truncation in index build: 150 of 300 documents (50.0%)")


def test_teacher_scoring_warns_once_for_all_its_chunks(bert_cross_encoder, tmp_path, caplog):
    import json

    from rag_retrieval_train.distill import score_with_teacher

    candidates = tmp_path / "candidates.jsonl"
    lines = [{"query": f"{QUERY} {i}", "pos": [LONG + str(i)], "neg": [SHORT[0]]} for i in range(6)]
    candidates.write_text("".join(json.dumps(line) + "\n" for line in lines))
    teacher = Reranker(bert_cross_encoder, max_length=32)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        score_with_teacher(teacher, candidates, tmp_path / "scores.jsonl", pairs_per_chunk=2, show_progress_bar=False)
    (message,) = truncation_warnings(caplog)  # three chunks, one warning
    assert message.startswith("truncation in teacher scoring: 6 of 12 documents (50.0%)")


def test_a_loop_of_calls_warns_once_then_logs_at_info(bert_cross_encoder, caplog):
    ranker = Reranker(bert_cross_encoder, max_length=32)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for _ in range(3):
            ranker.rank(QUERY, [LONG, *SHORT])
    levels = [r.levelno for r in caplog.records if r.name == LOGGER]
    assert levels == [logging.WARNING, logging.INFO, logging.INFO]
    assert ranker.truncation_totals.documents == 12 and ranker.truncation_totals.truncated == 3


@pytest.mark.parametrize("fixture", ["bert_cross_encoder", "bi_encoder", "decoder_llm"])
@pytest.mark.parametrize("long_doc", ["truncate", "split-max"])
def test_no_false_alarm_from_transformers_where_the_project_truncates(request, fixture, long_doc):
    """transformers warned 'Token indices sequence length is longer than ... will result in indexing
    errors' when the project tokenized whole documents to window or count them (make demo showed it)."""

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    ranker = Reranker(request.getfixturevalue(fixture), long_doc=long_doc, max_length=64)
    collect = Collect()
    transformers_logger = logging.getLogger("transformers")  # it does not propagate: caplog would not see it
    transformers_logger.addHandler(collect)
    try:
        ranker.rank("what is a panda?", ["The giant panda is a bear native to China. " * 120, "short"])
        if hasattr(ranker, "encode_documents"):
            ranker.encode_documents(["The giant panda is a bear native to China. " * 120])
    finally:
        transformers_logger.removeHandler(collect)
    assert not [m for m in collect.messages if "Token indices sequence length" in m]
