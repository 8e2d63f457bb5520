"""int8 smoothing (SmoothQuant) of the ONNX backend: exact in float32, and what makes int8 close on
a model with outlier activation channels, the case that per-tensor activation scales lose."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from kit import checkpoints as tc

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core.backends import onnx_export
from rag_retrieval_integrations.core.backends.smoothing import (
    SmoothedLinear,
    calibration_batches,
    input_ranges,
    smoothed_copy,
)

pytest.importorskip("onnxruntime")

NAMES = ["input_ids", "attention_mask", "token_type_ids"]
PAIRS = [
    ["what is a panda?", "The giant panda is a bear native to China."],
    ["what is a panda?", "Hamlet is a tragedy by William Shakespeare."],
    ["who wrote Hamlet?", "Hamlet is a tragedy by William Shakespeare."],
    ["who wrote Hamlet?", "Paris is the capital and largest city of France."],
    ["capital of France", "Paris is the capital and largest city of France."],
    ["capital of France", "The giant panda is a bear native to China, living in bamboo forests."],
]
CALIBRATION = [
    ("where do pandas live?", "Giant pandas live in the mountain forests of central China."),
    ("who was Shakespeare?", "William Shakespeare was an English playwright and poet."),
    ("largest city in France", "Paris is the largest city of France, on the Seine."),
    ("what do pandas eat?", "Bamboo makes up almost all of a giant panda's diet."),
    "The Eiffel Tower was built for the 1889 World's Fair.",
    "Macbeth is a tragedy about a Scottish general's ambition.",
]


def with_outlier_channels(path, factor: float = 40.0):
    """The checkpoint at ``path`` with two hidden channels made ``factor`` times larger after every
    LayerNorm: BERT's outlier dimensions, in a tiny model."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight[[3, 17]] *= factor
                module.bias[[3, 17]] *= factor
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def outlier_checkpoint(tmp_path_factory):
    return with_outlier_channels(tc.build_bert_cross_encoder(tmp_path_factory.mktemp("smooth") / "ce"))


@pytest.fixture
def outlier_cross_encoder(outlier_checkpoint, tmp_path):
    """A copy per test: each test starts without cached exports."""
    return Path(shutil.copytree(outlier_checkpoint, tmp_path / "ce"))


def test_smoothed_copy_is_the_same_function_in_float32(outlier_cross_encoder):
    ranker = Reranker(outlier_cross_encoder)
    batches = calibration_batches(ranker.tokenizer, NAMES, CALIBRATION, pairs=True)
    before = {k: v.clone() for k, v in ranker.model.state_dict().items()}
    smoothed = smoothed_copy(ranker.model, batches)
    wrapped = [m for m in smoothed.modules() if isinstance(m, SmoothedLinear)]
    linears = [m for m in smoothed.modules() if isinstance(m, torch.nn.Linear)]
    assert len(wrapped) == len(linears) > 0  # every linear layer that ran is smoothed
    for batch in batches:
        with torch.inference_mode():
            torch.testing.assert_close(smoothed(**batch).logits, ranker.model(**batch).logits, atol=1e-4, rtol=1e-4)
    for key, value in ranker.model.state_dict().items():  # the loaded model is untouched
        assert torch.equal(value, before[key])


def test_input_ranges_cover_every_linear_that_runs_and_see_the_outliers(outlier_cross_encoder):
    ranker = Reranker(outlier_cross_encoder)
    ranges = input_ranges(ranker.model, calibration_batches(ranker.tokenizer, NAMES, CALIBRATION, pairs=True))
    query = ranges["bert.encoder.layer.0.attention.self.query"]
    others = np.delete(query.numpy(), [3, 17])
    assert query[3] > 5 * others.max() and query[17] > 5 * others.max()
    assert all(v.shape == (ranker.model.config.hidden_size,) for k, v in ranges.items() if "query" in k)


def test_calibration_pairs_stay_pairs_for_a_cross_encoder_and_split_for_an_encoder(outlier_cross_encoder):
    tokenizer = Reranker(outlier_cross_encoder).tokenizer
    pairs = calibration_batches(tokenizer, NAMES, CALIBRATION, pairs=True)
    single = calibration_batches(tokenizer, NAMES[:2], CALIBRATION, pairs=False)
    assert [len(b["input_ids"]) for b in pairs] == [4, 2]  # four pairs (two segments), two lone texts
    assert (pairs[0]["token_type_ids"] == 1).any() and not (pairs[1]["token_type_ids"] == 1).any()
    assert [len(b["input_ids"]) for b in single] == [10] and set(single[0]) == {"input_ids", "attention_mask"}


def test_calibration_keeps_int8_close_where_outlier_channels_break_plain_dynamic_int8(outlier_cross_encoder):
    want = np.array(Reranker(outlier_cross_encoder, max_length=48).compute_score(PAIRS))
    plain = Reranker(outlier_cross_encoder, max_length=48, backend="onnx", quantize="int8")
    smoothed = Reranker(outlier_cross_encoder, max_length=48, backend="onnx", quantize="int8", calibration=CALIBRATION)
    plain_error = np.abs(np.array(plain.compute_score(PAIRS)) - want).max()
    smoothed_error = np.abs(np.array(smoothed.compute_score(PAIRS)) - want).max()
    print(f"int8 max |score - torch|: smoothed {smoothed_error:.2e}, plain {plain_error:.2e}")
    assert smoothed_error < plain_error / 3, (smoothed_error, plain_error)
    assert smoothed_error < 0.01


def test_calibration_texts_name_their_own_cache_entry(outlier_cross_encoder, monkeypatch):
    from rag_retrieval_integrations.core.backends import smoothing

    seen = []
    real = smoothing.input_ranges

    def spy(model, batches):
        seen.append([b["input_ids"].shape[0] for b in batches])
        return real(model, batches)

    monkeypatch.setattr(smoothing, "input_ranges", spy)
    plain = Reranker(outlier_cross_encoder, backend="onnx", quantize="int8")
    own = Reranker(outlier_cross_encoder, backend="onnx", quantize="int8", calibration=CALIBRATION)
    assert seen == [[4, 2]] and own.onnx_forward.path != plain.onnx_forward.path
    again = Reranker(outlier_cross_encoder, backend="onnx", quantize="int8", calibration=list(CALIBRATION))
    assert again.onnx_forward.path == own.onnx_forward.path and len(seen) == 1  # cached under its texts' hash
    other = Reranker(outlier_cross_encoder, backend="onnx", quantize="int8", calibration=CALIBRATION[:3])
    assert len(seen) == 2 and other.onnx_forward.path != own.onnx_forward.path
    # one int8 entry per output: the newest replaces the one before
    assert not Path(own.onnx_forward.path).exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "onnx", "calibration": ["a text"]}, "it needs quantize='int8'"),
        ({"backend": "onnx", "quantize": "int8", "calibration": "one string"}, "non-empty list"),
        ({"backend": "onnx", "quantize": "int8", "calibration": []}, "non-empty list"),
        ({"backend": "onnx", "quantize": "int8", "calibration": ["ok", ("a", "b", "c")]}, r"calibration\[1\]"),
    ],
)
def test_bad_calibration_is_refused(outlier_checkpoint, options, message):
    with pytest.raises(ValueError, match=message):
        Reranker(outlier_checkpoint, **options)


def test_smoothed_int8_without_calibration_inputs_quantizes_the_plain_export(tmp_path):
    path = tc.build_bert_cross_encoder(tmp_path / "ce")
    ranker = Reranker(path)
    cache = onnx_export.OnnxModelCache(str(path), "k")
    plain = cache.model_file(ranker.model, "logits", ["input_ids", "attention_mask"], "int8")
    assert plain.is_file() and (path / onnx_export.ONNX_FOLDER).is_dir()
    assert len(list((path / onnx_export.ONNX_FOLDER).glob("logits.fp32.*"))) == 1  # quantized from the fp32 file
