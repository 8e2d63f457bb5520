"""Broken or mismatched checkpoints are errors naming what was found, never scores from made-up weights.

One row per fault: the checkpoint it starts from, what is done to a copy of it, the
``model_type`` forced (``None``: detected), and the error and message fragment expected.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from kit import colbert as tc

from rag_retrieval_integrations import InvalidCheckpointError, Reranker


def drop(*names):
    def mutate(folder: Path) -> None:
        for name in names:
            (folder / name).unlink(missing_ok=True)

    return mutate


def truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def zero_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(bytes(weights.stat().st_size))


def zero_tensors(folder: Path) -> None:
    """Every tensor's bytes zeroed behind the safetensors header, which stays valid."""
    for weights in folder.rglob("model.safetensors"):
        raw = weights.read_bytes()
        header_end = 8 + int.from_bytes(raw[:8], "little")
        weights.write_bytes(raw[:header_end] + bytes(len(raw) - header_end))


def five_labels(folder: Path) -> None:
    """config.json edited to 5 labels over a 1-logit head."""
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): f"L{i}" for i in range(5)}
    config["label2id"] = {f"L{i}": i for i in range(5)}
    (folder / "config.json").write_text(json.dumps(config))


def config_as_list(folder: Path) -> None:
    (folder / "config.json").write_text(json.dumps([json.loads((folder / "config.json").read_text())]))


def unchanged(folder: Path) -> None:
    pass


NO_TOKENIZER = drop("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")

CASES = [
    # (case, starting checkpoint, mutation, forced model_type, message fragment of the InvalidCheckpointError)
    ("cross-encoder without tokenizer files", "bert_cross_encoder", NO_TOKENIZER, None, "has no tokenizer"),
    ("bi-encoder without tokenizer files", "bi_encoder", NO_TOKENIZER, None, "has no tokenizer"),
    ("LLM without tokenizer files", "decoder_llm", NO_TOKENIZER, None, "has no tokenizer"),
    ("ColBERT without tokenizer files", "colbert_path", NO_TOKENIZER, None, "has no tokenizer"),
    ("cross-encoder forced on a bi-encoder", "bi_encoder", unchanged, "cross-encoder", "no sequence-classification"),
    ("cross-encoder forced on an LLM", "decoder_llm", unchanged, "cross-encoder", "no sequence-classification"),
    ("cross-encoder forced on ColBERT", "colbert_path", unchanged, "cross-encoder", "no sequence-classification"),
    ("llm forced on a BERT cross-encoder", "bert_cross_encoder", unchanged, "llm", "no causal-LM head"),
    ("llm-zero-shot forced on a bi-encoder", "bi_encoder", unchanged, "llm-zero-shot", "no causal-LM head"),
    ("llm-classifier forced on a causal LM", "decoder_llm", unchanged, "llm-classifier", "no sequence-classification"),
    (
        "embedding forced on a cross-encoder",
        "bert_cross_encoder",
        unchanged,
        "embedding",
        "sequence-classification head",
    ),
    ("embedding forced on an LLM", "plain_decoder_llm", unchanged, "embedding", "decoder LLM"),
    (
        "embedding forced on an LLM classifier",
        "plain_decoder_classifier",
        unchanged,
        "embedding",
        "classification head",
    ),
    ("embedding forced on ColBERT", "colbert_path", unchanged, "embedding", "MultiVectorEncoder"),
    ("truncated model.safetensors", "bert_cross_encoder", truncate_weights, None, "model.safetensors"),
    ("zeroed model.safetensors", "bert_cross_encoder", zero_weights, None, "model.safetensors"),
    ("truncated bi-encoder weights", "bi_encoder", truncate_weights, None, "model.safetensors"),
    ("config.json holding a JSON list", "bert_cross_encoder", config_as_list, None, "holds a JSON list"),
    ("zeroed tensors behind a valid header", "bert_cross_encoder", zero_tensors, None, "every weight .* is zero"),
    ("zeroed bi-encoder tensors", "bi_encoder", zero_tensors, None, "every weight .* is zero"),
    ("zeroed LLM tensors", "decoder_llm", zero_tensors, None, "every weight .* is zero"),
    ("zeroed ColBERT tensors", "colbert_path", zero_tensors, None, "every weight .* is zero"),
    ("config.json with 5 labels over a 1-logit head", "bert_cross_encoder", five_labels, None, "does not fit its own"),
]


@pytest.fixture(scope="module")
def colbert_path(tmp_path_factory) -> Path:
    return tc.build_tiny_colbert(tmp_path_factory.mktemp("colbert") / "tiny-colbert")


@pytest.mark.parametrize("start, mutate, model_type, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_checkpoint_is_an_error_naming_what_was_found(request, tmp_path, start, mutate, model_type, fragment):
    folder = tmp_path / "checkpoint"
    shutil.copytree(request.getfixturevalue(start), folder)
    mutate(folder)
    with pytest.raises(InvalidCheckpointError, match=fragment) as info:
        Reranker(folder, model_type=model_type)
    assert str(folder) in str(info.value)


def test_a_head_mismatch_says_what_the_checkpoint_is(bi_encoder):
    with pytest.raises(InvalidCheckpointError, match=r"detected model_type: 'embedding'.*rag-retrieval-train reranker"):
        Reranker(bi_encoder, model_type="cross-encoder")


@pytest.mark.parametrize(
    "fixture, positions",
    [("bert_cross_encoder", 256), ("xlmr_cross_encoder", 256), ("bi_encoder", 256), ("decoder_llm", 1024)],
)
def test_max_length_above_the_position_limit_is_capped_with_a_warning(request, caplog, fixture, positions):
    """BERT crashed inside torch past its 256 positions; an LLM ran past its positions silently."""
    with caplog.at_level(logging.WARNING):
        ranker = Reranker(request.getfixturevalue(fixture), max_length=4096)
    assert ranker.max_length == positions
    assert "max_length=4096 is more than" in caplog.text and f"using max_length={positions}" in caplog.text
    long_doc = "The giant panda is a bear native to China. " * 400
    assert len(ranker.compute_score([("what is a panda?", long_doc)])) == 1


def test_xlmr_default_max_length_leaves_room_for_its_padding_offset(xlmr_cross_encoder, tmp_path):
    """RoBERTa's positions start after pad_token_id: 258 position embeddings hold 256 tokens."""
    folder = tmp_path / "xlmr"
    shutil.copytree(xlmr_cross_encoder, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("model_max_length", None)  # no tokenizer limit: the config's positions decide
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    ranker = Reranker(folder)
    assert ranker.max_length == 256
    assert len(ranker.compute_score([("q", "word " * 1000)])) == 1


@pytest.mark.parametrize("start", ["bert_cross_encoder", "decoder_llm", "colbert_path"])
def test_an_mrl_index_refuses_a_model_that_is_no_embedding_model(request, tmp_path, bi_encoder, start):
    """MRLIndex loads its model as model_type='embedding': a path to another kind is refused, both
    when building an index and when loading one with ``model=``."""
    from rag_retrieval_integrations.core import MRLIndex

    path = request.getfixturevalue(start)
    with pytest.raises(InvalidCheckpointError, match="cannot be loaded as an embedding model"):
        MRLIndex(path)
    index = MRLIndex(bi_encoder)
    index.add(["The giant panda is a bear.", "Paris is in France."])
    index.save(tmp_path / "index")
    with pytest.raises(InvalidCheckpointError, match="cannot be loaded as an embedding model"):
        MRLIndex.load(tmp_path / "index", model=path)


def test_a_bare_encoder_is_still_an_embedding_model_when_asked(tmp_path, bi_encoder):
    """The documented direction: a bare transformers encoder (no head) mean-pooled as a bi-encoder."""
    from transformers import AutoModel, AutoTokenizer

    bare = tmp_path / "bare"
    AutoModel.from_pretrained(bi_encoder).save_pretrained(bare)
    AutoTokenizer.from_pretrained(bi_encoder).save_pretrained(bare)
    ranker = Reranker(bare, model_type="embedding")
    assert ranker.model_type == "embedding" and len(ranker.compute_score([("q", "d")])) == 1
