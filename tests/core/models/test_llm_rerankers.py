"""LLM rerankers: FlagEmbedding parity, early-exit layers, 1-logit head, zero-shot log-odds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from kit import checkpoints
from kit.peers import import_peer
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import (
    LayerwiseLLMReranker,
    LLMReranker,
    PairPromptTemplate,
    ZeroShotLLMReranker,
    write_metadata,
)

QUERY = "what is a panda?"
DOCS = [
    "The giant panda is a bear native to China.",
    "Pandas eat bamboo for most of the day and live in mountain forests.",
    "",
    "Paris is the capital and most populous city of France. " * 20,  # long
    "A python is a large snake.",
]
PAIRS = [(QUERY, d) for d in DOCS] + [("who wrote hamlet?", "Shakespeare wrote Hamlet and Macbeth.")]


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def flag_llm_scores(path, pairs, flag_max_length: int) -> np.ndarray:
    FlagLLMReranker = import_peer("FlagEmbedding").FlagLLMReranker

    model = FlagLLMReranker(str(path), use_fp16=False, devices="cpu", max_length=flag_max_length)
    return np.asarray(model.compute_score(pairs, batch_size=4), dtype=np.float64)


@pytest.mark.parametrize("fixture", ["decoder_llm", "decoder_llm_with_bos"])
def test_yes_token_scores_equal_flag_llm_reranker(fixture, request):
    path = request.getfixturevalue(fixture)
    ranker = Reranker(path, batch_size=3)
    assert type(ranker) is LLMReranker
    # FlagLLMReranker's max_length bounds the passage ("B: " included) when the query is shorter
    # than the prompt; ours bounds the whole input. The same document budget, in our terms:
    tok = ranker.tokenizer
    flag_max = 200
    template = PairPromptTemplate()
    bos = 1 if tok.bos_token_id is not None else 0
    ours_max = flag_max + bos + n_tokens(tok, "A: " + QUERY) + 2 * n_tokens(tok, "\n") + n_tokens(tok, template.prompt)
    ranker.max_length = ours_max
    long_pairs = [(QUERY, d) for d in DOCS]
    np.testing.assert_allclose(ranker.compute_score(long_pairs), flag_llm_scores(path, long_pairs, flag_max), atol=1e-4)
    assert len(tok(DOCS[3])["input_ids"]) > flag_max  # the long document really is truncated
    short = Reranker(path, max_length=1024)
    np.testing.assert_allclose(short.compute_score(PAIRS), flag_llm_scores(path, PAIRS, 1024), atol=1e-4)
    np.testing.assert_allclose(
        short.compute_score(PAIRS, normalize=True), 1 / (1 + np.exp(-flag_llm_scores(path, PAIRS, 1024))), atol=1e-5
    )


def _reference_yes_logit(model, ids, yes_id, layer=None):
    """The bare transformers model on one unpadded input: the Yes logit at the last position."""
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=layer is not None)
        if layer is None:
            return out.logits[0, -1, yes_id].item()
        hidden = out.hidden_states[layer][0, -1]
        if layer < model.config.num_hidden_layers:  # the last entry is already normed
            hidden = model.model.norm(hidden)
        return model.lm_head(hidden)[yes_id].item()


def test_split_max_is_the_max_over_reference_windows(decoder_llm):
    ranker = Reranker(decoder_llm, long_doc="split-max", overlap=10, max_length=160)
    tok = ranker.tokenizer
    model = AutoModelForCausalLM.from_pretrained(decoder_llm).eval()
    template = PairPromptTemplate()
    q_ids = tok("A: " + QUERY, add_special_tokens=False)["input_ids"]
    sep = tok("\n", add_special_tokens=False)["input_ids"]
    prompt = tok(template.prompt, add_special_tokens=False)["input_ids"]
    full = tok("B: " + DOCS[3], add_special_tokens=False)["input_ids"]
    prefix = tok("B:", add_special_tokens=False)["input_ids"]
    assert full[: len(prefix)] == prefix
    body = full[len(prefix) :]
    room = 160 - len(q_ids) - 2 * len(sep) - len(prefix) - len(prompt)
    windows = [body[s : s + room] for s in range(0, len(body) - 10, room - 10)]
    assert len(windows) > 2 and windows[-1][-1] == body[-1]
    expected = max(_reference_yes_logit(model, q_ids + sep + prefix + w + sep + prompt, ranker.yes_id) for w in windows)
    assert ranker.compute_score([(QUERY, DOCS[3])])[0] == pytest.approx(expected, abs=1e-4)
    # short documents: split-max equals truncate
    short = [(QUERY, d) for d in DOCS[:3]]
    np.testing.assert_allclose(
        ranker.compute_score(short), Reranker(decoder_llm, max_length=160).compute_score(short), atol=1e-5
    )


def test_cutoff_at_last_layer_equals_full_model_and_earlier_layers_match_reference(decoder_llm):
    ranker = Reranker(decoder_llm)
    full = ranker.compute_score(PAIRS)
    per_layer = ranker.compute_score(PAIRS, cutoff_layers=[1, 2])
    assert len(per_layer) == 2 and all(len(scores) == len(PAIRS) for scores in per_layer)
    np.testing.assert_allclose(per_layer[1], full, atol=1e-5)
    assert not np.allclose(per_layer[0], full, atol=1e-3)
    model = AutoModelForCausalLM.from_pretrained(decoder_llm).eval()
    encoded = ranker.encode_pairs([QUERY], [DOCS[0]])
    assert per_layer[0][0] == pytest.approx(
        _reference_yes_logit(model, encoded.input_ids[0], ranker.yes_id, 1), abs=1e-5
    )
    # a single cutoff gives a flat list, usable for ranking
    assert ranker.rank(QUERY, DOCS, cutoff_layers=[1]).scores == sorted(per_layer[0][:5], reverse=True)


def test_layerwise_family_defaults_to_the_last_layer(decoder_llm):
    layerwise = Reranker(decoder_llm, model_type="llm-layerwise")
    assert isinstance(layerwise, LayerwiseLLMReranker) and layerwise.cutoff_layers == [2]
    np.testing.assert_allclose(layerwise.compute_score(PAIRS), Reranker(decoder_llm).compute_score(PAIRS), atol=1e-5)
    several = Reranker(decoder_llm, model_type="llm-layerwise", cutoff_layers=[2, 1])
    scores = several.compute_score(PAIRS)
    assert len(scores) == 2
    with pytest.raises(ValueError, match="one score per document"):
        several.rank(QUERY, DOCS)
    assert len(several.rank(QUERY, DOCS, cutoff_layers=2)) == len(DOCS)


@pytest.mark.parametrize("bad", [0, 3, -1, [1, 5], [], "2"])
def test_cutoff_layers_out_of_range(decoder_llm, bad):
    ranker = Reranker(decoder_llm)
    with pytest.raises(ValueError, match="cutoff_layers"):
        ranker.compute_score(PAIRS, cutoff_layers=bad)
    with pytest.raises(ValueError, match="2 layers" if bad != [] else "at least one"):
        Reranker(decoder_llm, model_type="llm-layerwise", cutoff_layers=bad)


def test_cross_encoder_rejects_cutoff_layers(bert_cross_encoder):
    with pytest.raises(TypeError, match="cutoff_layers"):
        Reranker(bert_cross_encoder).compute_score(PAIRS, cutoff_layers=[1])


@pytest.fixture(scope="module")
def deep_llm(tmp_path_factory):
    return checkpoints.build_decoder_llm(tmp_path_factory.mktemp("models") / "deep-llm", num_layers=8, hidden=128)


def test_shallow_cutoff_stops_the_forward_pass(deep_llm):
    ranker = Reranker(deep_llm, max_length=512)
    calls = [0] * 8
    hooks = [
        block.register_forward_pre_hook(lambda *_args, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, block in enumerate(ranker.model.model.layers)
    ]
    ranker.compute_score(PAIRS, cutoff_layers=[2])
    for h in hooks:
        h.remove()
    assert calls[:2] != [0, 0] and calls[2:] == [0] * 6
    # (No wall-clock assertion: the skipped blocks above are the saving, and timings on a
    # shared 2-core CI machine make such a test flaky.)


def test_native_layerwise_model_gets_cutoff_layers_passed_through(tmp_path):
    path = checkpoints.build_native_layerwise(tmp_path / "native-layerwise")
    ranker = Reranker(path, model_type="llm-layerwise", trust_remote_code=True, cutoff_layers=[1, 3])
    assert ranker.native_layerwise
    scores = ranker.compute_score(PAIRS)
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
    for i, (q, d) in enumerate(PAIRS[:3]):
        ids = torch.tensor([ranker.encode_pairs([q], [d]).input_ids[0]])
        with torch.inference_mode():
            logits = model(input_ids=ids, cutoff_layers=[1, 3]).logits
        assert [scores[0][i], scores[1][i]] == pytest.approx(
            [logits[0][0, -1].item(), logits[1][0, -1].item()], abs=1e-5
        )
    # detected as a causal LM, the plain "llm" family scores it through its own last-layer head
    np.testing.assert_allclose(Reranker(path, trust_remote_code=True).compute_score(PAIRS), scores[1], atol=1e-5)


def test_decoder_classifier_head_scores_the_last_token(decoder_classifier):
    ranker = Reranker(decoder_classifier, batch_size=4)
    assert ranker.tokenizer.pad_token is not None  # set from eos: the tokenizer had none
    model = AutoModelForSequenceClassification.from_pretrained(decoder_classifier).eval()
    encoded = ranker.encode_pairs([q for q, _ in PAIRS], [d for _, d in PAIRS])
    with torch.inference_mode():
        expected = [model(input_ids=torch.tensor([ids])).logits[0, 0].item() for ids in encoded.input_ids]
    np.testing.assert_allclose(ranker.compute_score(PAIRS), expected, atol=1e-5)


def test_zero_shot_score_is_yes_no_log_odds(decoder_llm):
    ranker = Reranker(decoder_llm, model_type="llm-zero-shot", instruction="Answer Yes or No.", batch_size=2)
    assert isinstance(ranker, ZeroShotLLMReranker)
    tok = AutoTokenizer.from_pretrained(decoder_llm)
    model = AutoModelForCausalLM.from_pretrained(decoder_llm).eval()
    yes, no = tok.convert_tokens_to_ids("Yes"), tok.convert_tokens_to_ids("No")
    expected, p_yes = [], []
    for q, d in PAIRS:
        messages = [
            {"role": "system", "content": "Answer Yes or No."},
            {"role": "user", "content": f"Query: {q}\n\nDocument: {d}\n\nIs the document relevant to the query?"},
        ]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        with torch.inference_mode():
            logits = model(**tok(text, add_special_tokens=False, return_tensors="pt")).logits[0, -1]
        expected.append((logits[yes] - logits[no]).item())
        p_yes.append(torch.softmax(logits[[yes, no]], 0)[0].item())
    np.testing.assert_allclose(ranker.compute_score(PAIRS), expected, atol=1e-4)
    np.testing.assert_allclose(ranker.compute_score(PAIRS, normalize=True), p_yes, atol=1e-5)


def test_zero_shot_needs_a_chat_template(decoder_llm, tmp_path):
    import json

    folder = tmp_path / "no-template"
    shutil.copytree(decoder_llm, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no chat template"):
        Reranker(folder, model_type="llm-zero-shot")


def test_scoring_token_must_be_a_single_token(decoder_llm):
    with pytest.raises(ValueError, match="'Yes please'"):
        Reranker(decoder_llm, yes_token="Yes please")
    with pytest.raises(ValueError, match="no token"):
        Reranker(decoder_llm, model_type="llm-zero-shot", no_token="Nope nope nope")


def test_prompt_template_and_token_come_from_our_metadata(decoder_llm, tmp_path):
    folder = tmp_path / "trained-llm"
    shutil.copytree(decoder_llm, folder)
    template = PairPromptTemplate(query_instruction="Q: ", passage_instruction="P: ", prompt="Relevant? Yes or No.")
    write_metadata(folder, "llm", reranker_options={"prompt_template": template.to_dict(), "yes_token": "No"})
    from_metadata = Reranker(folder)
    assert from_metadata.prompt_template == template and from_metadata.yes_token == "No"
    explicit = Reranker(decoder_llm, prompt_template=template, yes_token="No")
    np.testing.assert_allclose(from_metadata.compute_score(PAIRS), explicit.compute_score(PAIRS), atol=1e-6)
    assert not np.allclose(from_metadata.compute_score(PAIRS), Reranker(decoder_llm).compute_score(PAIRS), atol=1e-4)
    with pytest.raises(ValueError, match="unknown prompt template keys"):
        Reranker(decoder_llm, prompt_template={"instruction": "x"})


@pytest.mark.parametrize("model_type", ["llm", "llm-zero-shot", "llm-classifier"])
def test_bad_input_and_edge_cases(model_type, decoder_llm, decoder_classifier):
    ranker = Reranker(decoder_classifier if model_type == "llm-classifier" else decoder_llm, model_type=model_type)
    assert len(ranker.rank(QUERY, [])) == 0
    results = ranker.rank(QUERY, ["", "The giant panda is a bear."])
    assert sorted(results.indices) == [0, 1]
    with pytest.raises(TypeError, match=r"docs\[0\]"):
        ranker.rank(QUERY, [None])
    with pytest.raises(TypeError, match="single str"):
        ranker.rank(QUERY, "a document")
    with pytest.raises(ValueError, match="batch_size"):
        ranker.rank(QUERY, ["d"], batch_size=0)


def test_max_length_too_small_for_the_prompt(decoder_llm):
    with pytest.raises(ValueError, match="max_length=40"):
        Reranker(decoder_llm, max_length=40).compute_score(PAIRS)
