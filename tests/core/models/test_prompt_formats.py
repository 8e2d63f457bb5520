"""Prompt formats of the decoder rerankers: Qwen3-Reranker scored by its model card's recipe, formats
named, saved and reloaded, and a causal LM whose format nothing gives refused instead of guessed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from kit import checkpoints
from kit.peers import import_peer

from rag_retrieval_integrations import (
    PromptFormat,
    Reranker,
    UnknownPromptFormatError,
    available_prompt_formats,
    register_prompt_format,
)
from rag_retrieval_integrations.core import TextPromptTemplate
from rag_retrieval_integrations.core.models.llm_yes_token import LLMReranker

PAIRS = [
    ("what is a panda?", "The giant panda is a bear native to China."),
    ("what is a panda?", "Paris is the capital and most populous city of France."),
    ("who wrote Hamlet?", "Shakespeare wrote Hamlet, Macbeth and many other plays."),
    ("who wrote Hamlet?", "Water boils at one hundred degrees Celsius at sea level."),
]
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    return checkpoints.build_qwen3_reranker(tmp_path_factory.mktemp("qwen3") / "qwen3-reranker")


def model_card_scores(path, pairs, instruction=DEFAULT_INSTRUCTION, max_length=8192):
    """Qwen3-Reranker's model card recipe (transformers usage), step for step: P(yes) over yes/no."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    token_false_id = tokenizer.convert_tokens_to_ids("no")
    token_true_id = tokenizer.convert_tokens_to_ids("yes")
    prefix = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
        'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    )
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(suffix, add_special_tokens=False)
    texts = [f"<Instruct>: {instruction}\n<Query>: {q}\n<Document>: {d}" for q, d in pairs]
    inputs = tokenizer(
        texts,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix_tokens) - len(suffix_tokens),
    )
    inputs["input_ids"] = [prefix_tokens + ids + suffix_tokens for ids in inputs["input_ids"]]
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    with torch.no_grad():
        batch_scores = model(**inputs).logits[:, -1, :]
    stacked = torch.stack([batch_scores[:, token_false_id], batch_scores[:, token_true_id]], dim=1)
    return torch.nn.functional.log_softmax(stacked, dim=1)[:, 1].exp().numpy()


def test_qwen3_reranker_scores_equal_the_model_card_recipe(qwen3):
    ranker = Reranker(qwen3, prompt_format="qwen3-reranker", batch_size=3)
    assert isinstance(ranker, LLMReranker) and (ranker.yes_token, ranker.no_token) == ("yes", "no")
    want = model_card_scores(qwen3, PAIRS)
    np.testing.assert_allclose(ranker.compute_score(PAIRS, normalize=True), want, atol=1e-5)
    raw = np.array(ranker.compute_score(PAIRS))  # the log-odds: P(yes) = sigmoid(raw)
    np.testing.assert_allclose(1 / (1 + np.exp(-raw)), want, atol=1e-5)
    other = "Given a question, find the passage that answers it"
    custom = Reranker(qwen3, prompt_format="qwen3-reranker", instruction=other)
    np.testing.assert_allclose(
        custom.compute_score(PAIRS, normalize=True), model_card_scores(qwen3, PAIRS, other), atol=1e-5
    )


def test_qwen3_reranker_truncates_the_document_as_the_model_card_does(qwen3):
    long_pairs = [(q, d + " " + " ".join([d] * 30)) for q, d in PAIRS[:2]]
    ranker = Reranker(qwen3, prompt_format="qwen3-reranker", max_length=220, long_doc="truncate")
    np.testing.assert_allclose(
        ranker.compute_score(long_pairs, normalize=True),
        model_card_scores(qwen3, long_pairs, max_length=220),
        atol=1e-5,
    )


def test_a_long_query_is_cut_to_its_share_and_the_format_around_it_is_kept(qwen3):
    ranker = Reranker(qwen3, prompt_format="qwen3-reranker", max_length=220)
    query, doc = " ".join(["what is a panda?"] * 40), PAIRS[0][1]
    encoded = ranker.encode_pairs([query], [doc])
    (ids,), (kept,) = encoded.input_ids, encoded.kept_doc_tokens
    template = ranker.prompt_template
    prefix, suffix = (
        ranker.tokenizer(t, add_special_tokens=False)["input_ids"] for t in (template.prefix, template.suffix)
    )
    doc_ids = ranker.tokenizer(" " + doc, add_special_tokens=False)["input_ids"]
    assert len(ids) <= 220 and ids[: len(prefix)] == prefix and ids[-len(suffix) :] == suffix
    room = (
        220 - len(prefix) - len(suffix) - len(ranker.tokenizer(template.parts()[0] + template.parts()[1])["input_ids"])
    )
    assert kept >= room // 5 and ids[-len(suffix) - kept : -len(suffix)] == doc_ids[:kept]  # its share
    assert ranker.compute_score([(query, doc)]) == pytest.approx(ranker.compute_score([(query, doc)] * 2)[:1])
    query_ids = ranker.tokenizer(" " + query, add_special_tokens=False)["input_ids"]
    assert len(prefix) + len(query_ids) + kept + len(suffix) > len(ids)  # the query was cut, not the format


def test_qwen3_reranker_equals_sentence_transformers_logit_score(qwen3, tmp_path):
    """sentence-transformers loads a causal LM as a CrossEncoder with a LogitScore(yes, no) head; with the
    format as its chat template it reads the same tokens and gives the same log-odds."""
    import_peer("sentence_transformers")
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder.modules import LogitScore

    ours = Reranker(qwen3, prompt_format="qwen3-reranker")
    template = ours.prompt_template.as_chat_template()
    peer = CrossEncoder(str(qwen3), processor_kwargs={"chat_template": template})
    peer[0].tokenizer.chat_template = template
    assert isinstance(peer[1], LogitScore) and (peer[1].true_token_id, peer[1].false_token_id) == (
        ours.yes_id,
        ours.no_id,
    )
    assert peer[0].preprocess(PAIRS[:1])["input_ids"][0].tolist() == ours.encode_pairs(*zip(*PAIRS[:1])).input_ids[0]
    theirs = peer.predict(PAIRS, batch_size=4, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(ours.compute_score(PAIRS), theirs, atol=1e-5)
    # the folder sentence-transformers saves: refused without a format (its chat template is not read
    # as one), and the same scores with the format named
    peer.save(str(tmp_path / "st-qwen3"))
    with pytest.raises(UnknownPromptFormatError, match="LogitScore head"):
        Reranker(tmp_path / "st-qwen3")
    saved = Reranker(tmp_path / "st-qwen3", prompt_format="qwen3-reranker")
    assert isinstance(saved, LLMReranker)  # the LM head scores: not a classifier with a missing head
    np.testing.assert_allclose(saved.compute_score(PAIRS), theirs, atol=1e-5)


@pytest.mark.parametrize("model_type", [None, "llm", "llm-layerwise"])
def test_a_causal_lm_whose_format_nothing_gives_is_refused_not_guessed(qwen3, model_type):
    with pytest.raises(UnknownPromptFormatError, match="do not say which prompt format") as refused:
        Reranker(qwen3, model_type)
    message = str(refused.value)
    assert all(name in message for name in available_prompt_formats())
    assert "prompt_format='qwen3-reranker'" in message and "llm-zero-shot" in message
    assert isinstance(refused.value, ValueError)  # an InvalidCheckpointError


def test_a_classifier_decoder_without_a_format_is_refused_too(plain_decoder_classifier, plain_decoder_llm):
    with pytest.raises(UnknownPromptFormatError):
        Reranker(plain_decoder_classifier)
    loaded = Reranker(plain_decoder_classifier, prompt_format="qwen3-reranker")
    assert loaded.model_type == "llm-classifier" and loaded.prompt_format.name == "qwen3-reranker"
    with pytest.raises(UnknownPromptFormatError):  # the kit's Qwen2 causal LM, plain
        Reranker(plain_decoder_llm)


def test_a_non_decoder_forced_into_an_llm_family_gets_the_head_error_not_the_format_one(bert_cross_encoder):
    with pytest.raises(ValueError, match="no causal-LM head"):
        Reranker(bert_cross_encoder, model_type="llm")


def test_formats_are_saved_and_a_user_choice_replaces_the_saved_one(qwen3, tmp_path):
    from rag_retrieval_integrations.core import write_metadata

    ranker = Reranker(qwen3, prompt_format="qwen3-reranker", instruction="Find the answer")
    saved = tmp_path / "saved"
    ranker.model.save_pretrained(saved)
    ranker.tokenizer.save_pretrained(saved)
    write_metadata(saved, "llm", reranker_options=ranker.reranker_options())
    again = Reranker(saved)  # the format and its instruction come back without being told
    assert again.prompt_format == ranker.prompt_format and again.prompt_template.instruction == "Find the answer"
    np.testing.assert_allclose(again.compute_score(PAIRS), ranker.compute_score(PAIRS), atol=1e-6)
    options = json.loads((saved / "rag_retrieval.json").read_text())["reranker_options"]
    assert options["prompt_format"]["name"] == "qwen3-reranker" and options["prompt_format"]["kind"] == "text"
    flag = Reranker(saved, prompt_template={"prompt": "Relevant?"})  # the caller's template, not saved + given
    assert flag.prompt_format.name == "custom" and flag.prompt_template.prompt == "Relevant?"
    assert Reranker(saved, prompt_format="bge-reranker-v2-gemma", yes_token="yes").prompt_format.yes_token == "yes"


def test_a_registered_format_loads_by_name_and_bad_formats_are_errors(qwen3):
    mine = PromptFormat(
        "my-format",
        TextPromptTemplate(prefix="", user="Q: {query}\nD: {document}", suffix="\nRelevant:"),
        yes_token="yes",
        no_token="no",
    )
    register_prompt_format(mine)
    assert Reranker(qwen3, prompt_format="my-format").prompt_format == mine
    with pytest.raises(ValueError, match="exists"):
        register_prompt_format(PromptFormat("my-format", mine.template, "no"))
    with pytest.raises(ValueError, match=r"unknown prompt_format 'nope'; known formats: \["):
        Reranker(qwen3, prompt_format="nope")
    with pytest.raises(ValueError, match="not both"):
        Reranker(qwen3, prompt_format="qwen3-reranker", prompt_template={})
    with pytest.raises(ValueError, match="no {instruction} slot"):
        Reranker(qwen3, prompt_format="bge-reranker-v2-gemma", instruction="x")
    with pytest.raises(ValueError, match="must end with {document}"):
        TextPromptTemplate(prefix="", user="{document} {query}", suffix="")
