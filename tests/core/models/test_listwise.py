"""Listwise LLM reranking: permutation repair, the sliding window, scores, the local family
(RankGPT generation and FIRST logits against transformers on the same checkpoint) and an
OpenAI-compatible endpoint over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
import torch
from kit.chat_endpoint import ScriptedChatModel, chat_endpoint, overlap_order
from transformers import AutoModelForCausalLM, AutoTokenizer

from rag_retrieval_integrations import ListwiseLLMReranker, OpenAIListwiseReranker, RemoteRerankerError, Reranker
from rag_retrieval_integrations.core import PermutationRepairs, SlidingWindow
from rag_retrieval_integrations.core.models.listwise_order import listwise_scores, parse_permutation
from rag_retrieval_integrations.core.models.listwise_prompt import ListwisePrompt

NUMBERS = ["1", "2", "3"]


@pytest.mark.parametrize(
    ("answer", "order", "missing", "duplicate", "unknown"),
    [
        ("[2] > [1] > [3]", [1, 0, 2], 0, 0, 0),
        ("[3] > [1]", [2, 0, 1], 1, 0, 0),  # missing: after the ranked ones, in input order
        ("[2] > [2] > [1] > [3] > [1]", [1, 0, 2], 0, 2, 0),  # repeats dropped
        ("[7] > [x] > [2]", [1, 0, 2], 2, 0, 2),  # unknown dropped, then the missing
        ("I cannot rank these.", [0, 1, 2], 3, 0, 0),  # nothing usable: the input order
        ("2 > 3 > 1", [1, 2, 0], 0, 0, 0),  # bare numbers, when nothing is in brackets
        ("[02] > [ 3 ] > [1]", [1, 2, 0], 0, 0, 0),
        ("", [0, 1, 2], 3, 0, 0),
    ],
)
def test_any_answer_parses_to_a_full_order_and_every_repair_is_counted(answer, order, missing, duplicate, unknown):
    got, repairs = parse_permutation(answer, NUMBERS)
    assert got == order
    assert (repairs.missing, repairs.duplicate, repairs.unknown) == (missing, duplicate, unknown)
    assert repairs.windows == 1 and repairs.repaired_windows == int(missing + duplicate + unknown > 0)


def test_letter_identifiers_parse_in_either_case():
    assert parse_permutation("[B] > [a] > [C] > [D]", ["A", "B", "C"])[0] == [1, 0, 2]
    assert parse_permutation("[B] > [a] > [C] > [D]", ["A", "B", "C"])[1].unknown == 1


def test_the_window_moves_from_the_back_to_the_front():
    window = SlidingWindow(window_size=20, step=10)
    assert window.windows(50) == [(30, 50), (20, 40), (10, 30), (0, 20)]
    assert window.windows(25) == [(5, 25), (0, 15)]
    assert window.windows(20) == [(0, 20)] and window.windows(3) == [(0, 3)]
    with pytest.raises(ValueError, match="step=21 is more than window_size=20"):
        SlidingWindow(window_size=20, step=21)
    with pytest.raises(ValueError, match="passes"):
        SlidingWindow(passes=0)
    assert SlidingWindow(window_size=4).step == 2  # half the window unless given


def _scripted(relevance: dict[str, float], calls: list[int]):
    """A window ranker that orders passages by a hidden relevance, as a perfect model would."""

    def rank_window(query: str, passages: list[str]) -> tuple[list[int], PermutationRepairs]:
        calls.append(len(passages))
        return sorted(range(len(passages)), key=lambda i: -relevance[passages[i]]), PermutationRepairs(windows=1)

    return rank_window


def test_one_pass_brings_the_best_to_the_front_and_more_passes_sort_further():
    rng = np.random.default_rng(0)
    docs = [f"doc {i}" for i in range(50)]
    relevance = {d: float(r) for d, r in zip(docs, rng.permutation(50))}
    truth = sorted(range(50), key=lambda i: -relevance[docs[i]])
    calls: list[int] = []
    order, repairs = SlidingWindow(20, 10).order("q", docs, _scripted(relevance, calls))
    assert calls == [20, 20, 20, 20] and repairs.windows == 4
    assert order[:10] == truth[:10]  # the top window_size - step are exact after one pass
    assert sorted(order) == list(range(50))
    deeper, _ = SlidingWindow(20, 10, passes=5).order("q", docs, _scripted(relevance, []))
    assert deeper[:20] == truth[:20]


def test_scores_are_reciprocal_ranks_within_each_query():
    queries = ["a", "b", "a", "a", "b"]
    docs = ["x", "y", "z", "w", "v"]
    scores = listwise_scores(queries, docs, lambda q, d: list(range(len(d)))[::-1])
    # query a: x, z, w reversed -> w first; query b: y, v reversed -> v first
    np.testing.assert_allclose(scores, [1 / 3, 1 / 2, 1 / 2, 1.0, 1.0])


# ---- a local chat model ----------------------------------------------------------------------

QUERY = "what is a panda?"
DOCS = [
    "Paris is the capital of France.",
    "The giant panda is a bear native to China.",
    "Pandas eat bamboo for most of the day.",
    "The stock market fell on Monday.",
]


def _reference_prompt(tokenizer, labels, prefill=""):
    messages = ListwisePrompt().messages(QUERY, DOCS, labels)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefill
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])


def test_first_orders_by_the_first_identifiers_logits_as_transformers_computes_them(decoder_llm):
    ranker = Reranker(decoder_llm, model_type="llm-listwise", method="first", window_size=4)
    assert isinstance(ranker, ListwiseLLMReranker)
    tokenizer = AutoTokenizer.from_pretrained(decoder_llm)
    model = AutoModelForCausalLM.from_pretrained(decoder_llm).eval()
    with torch.no_grad():
        logits = model(_reference_prompt(tokenizer, list("ABCD"), prefill="[")).logits[0, -1]
    letter_ids = [tokenizer("[" + c, add_special_tokens=False)["input_ids"][-1] for c in "ABCD"]
    expected = np.argsort(-logits[letter_ids].numpy(), kind="stable")
    ranked = ranker.rank(QUERY, DOCS)
    assert ranked.indices == expected.tolist()
    np.testing.assert_allclose(ranked.scores, [1.0, 1 / 2, 1 / 3, 1 / 4])
    assert ranker.permutation_repairs.repairs == 0


def test_generate_parses_what_the_model_writes_and_repairs_it(decoder_llm, caplog):
    ranker = Reranker(decoder_llm, model_type="llm-listwise", window_size=4, max_new_tokens=12)
    tokenizer = AutoTokenizer.from_pretrained(decoder_llm)
    model = AutoModelForCausalLM.from_pretrained(decoder_llm).eval()
    prompt = _reference_prompt(tokenizer, NUMBERS + ["4"])
    generated = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(generated[0, prompt.shape[1] :], skip_special_tokens=True)
    expected, repairs = parse_permutation(answer, NUMBERS + ["4"])
    with caplog.at_level(logging.WARNING):
        ranked = ranker.rank(QUERY, DOCS)
    assert ranked.indices == expected
    assert ranker.permutation_repairs.repairs == repairs.repairs  # a tiny random model: garbage, repaired
    if repairs.repairs:
        assert "repaired" in caplog.text


def test_the_local_family_through_every_entry_point(decoder_llm):
    ranker = Reranker(decoder_llm, model_type="llm-listwise", method="first", window_size=3, step=1)
    single = ranker.compute_score((QUERY, DOCS[0]))
    assert single == 1.0  # one document is first of one
    many = ranker.rank_many([QUERY, QUERY], [DOCS, DOCS[:2]])  # the same query twice: each list alone
    assert [len(r) for r in many] == [4, 2] and many[1].scores == [1.0, 0.5]
    # what a teacher scores groups with: the same query's two groups are two lists, not one of six
    assert ranker.score_many([QUERY, QUERY], [DOCS, DOCS[:2]]) == [
        [r.score for r in sorted(m, key=lambda r: r.index)] for m in many
    ]
    assert asyncio.run(ranker.arank(QUERY, DOCS)).indices == ranker.rank(QUERY, DOCS).indices
    assert ranker.rerank(QUERY, DOCS).indices == ranker.rank(QUERY, DOCS).indices  # no long_doc to set


def test_bad_listwise_options_are_clear_errors(decoder_llm, plain_decoder_llm, tmp_path):
    with pytest.raises(ValueError, match="method must be"):
        Reranker(decoder_llm, model_type="llm-listwise", method="pointwise")
    with pytest.raises(ValueError, match="at most 26 passages"):
        Reranker(decoder_llm, model_type="llm-listwise", method="first", window_size=30)
    with pytest.raises(ValueError, match="split-max"):
        Reranker(decoder_llm, model_type="llm-listwise", long_doc="split-max")
    with pytest.raises(TypeError, match="per-call option"):
        Reranker(decoder_llm, model_type="llm-listwise").rank(QUERY, DOCS, max_length=64)
    with pytest.raises(ValueError, match="cannot hold the listwise prompt"):
        Reranker(decoder_llm, model_type="llm-listwise", max_length=32).rank(QUERY, DOCS)


# ---- an OpenAI-compatible endpoint -----------------------------------------------------------


def test_an_endpoint_ranks_through_real_http_with_a_sliding_window():
    model = ScriptedChatModel()
    docs = [f"passage {i} " + " ".join(["panda"] * (i % 7)) for i in range(25)]
    with chat_endpoint(model) as url:
        ranker = OpenAIListwiseReranker(url, "scripted", window_size=10, step=5, api_key="k")
        ranked = ranker.rank("panda facts", docs)
        assert len(model.requests) == len(SlidingWindow(10, 5).windows(25))
        assert model.requests[0]["model"] == "scripted" and model.requests[0]["temperature"] == 0.0
        truth = sorted(range(25), key=lambda i: -(i % 7))
        assert ranked.indices[:5] == truth[:5]  # the exact top window_size - step
        assert sorted(ranked.indices) == list(range(25))
        np.testing.assert_allclose(ranked.scores, [1 / r for r in range(1, 26)])
        assert asyncio.run(ranker.arank("panda facts", docs)).indices == ranked.indices


def test_an_endpoints_garbage_is_repaired_and_its_errors_are_clear(caplog):
    model = ScriptedChatModel(answers=["[3] > [3] > [9] > sure!"])
    with chat_endpoint(model) as url:
        ranker = OpenAIListwiseReranker(url, "scripted")
        with caplog.at_level(logging.WARNING):
            ranked = ranker.rank(QUERY, DOCS)
        assert ranked.indices == [2, 0, 1, 3]
        repairs = ranker.permutation_repairs
        assert (repairs.missing, repairs.duplicate, repairs.unknown) == (3, 1, 1)
        assert "repaired" in caplog.text
        model.status = 500
        with pytest.raises(RemoteRerankerError, match="answered 500"):
            ranker.rank(QUERY, DOCS)
    with pytest.raises(RemoteRerankerError, match="cannot reach"):
        ranker.rank(QUERY, DOCS)
    with pytest.raises(ValueError, match="base_url"):
        OpenAIListwiseReranker("localhost:8000", "m")


def test_the_scripted_endpoint_is_the_reference_it_claims():
    assert overlap_order("a b", [("1", "x"), ("2", "a b"), ("3", "a"), ("4", "a a a")]) == ["4", "2", "3", "1"]
