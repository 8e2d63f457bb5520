"""int8 smoothing (SmoothQuant) of the ONNX backend: exact in float32, and what makes int8 close on
a model with outlier activation channels, the case that per-tensor activation scales lose."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tiny_checkpoints as tc
import torch

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core.backends import onnx_export
from rag_retrieval_integrations.core.backends.smoothing import (
    SmoothedLinear,
    calibration_batches,
    input_ranges,
    smoothed_copy,
)

pytest.importorskip("onnxruntime")

PAIRS = [
    ["what is a panda?", "The giant panda is a bear native to China."],
    ["what is a panda?", "Hamlet is a tragedy by William Shakespeare."],
    ["who wrote Hamlet?", "Hamlet is a tragedy by William Shakespeare."],
    ["who wrote Hamlet?", "Paris is the capital and largest city of France."],
    ["capital of France", "Paris is the capital and largest city of France."],
    ["capital of France", "The giant panda is a bear native to China, living in bamboo forests."],
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
    batches = calibration_batches(ranker.tokenizer, ["input_ids", "attention_mask", "token_type_ids"], pairs=True)
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
    batches = calibration_batches(ranker.tokenizer, ["input_ids", "attention_mask", "token_type_ids"], pairs=True)
    ranges = input_ranges(ranker.model, batches)
    query = ranges["bert.encoder.layer.0.attention.self.query"]
    others = np.delete(query.numpy(), [3, 17])
    assert query[3] > 5 * others.max() and query[17] > 5 * others.max()
    assert all(v.shape == (ranker.model.config.hidden_size,) for k, v in ranges.items() if "query" in k)


def test_calibration_pairs_for_a_cross_encoder_single_texts_otherwise(outlier_cross_encoder):
    tokenizer = Reranker(outlier_cross_encoder).tokenizer
    pairs = calibration_batches(tokenizer, ["input_ids", "attention_mask", "token_type_ids"], pairs=True)
    single = calibration_batches(tokenizer, ["input_ids", "attention_mask"], pairs=False)
    assert any((b["token_type_ids"] == 1).any() for b in pairs)  # a second segment
    assert all(set(b) == {"input_ids", "attention_mask"} for b in single)
    assert sum(len(b["input_ids"]) for b in pairs) == sum(len(b["input_ids"]) for b in single)


def test_smoothing_keeps_int8_close_where_outlier_channels_break_plain_dynamic_int8(outlier_cross_encoder, monkeypatch):
    want = np.array(Reranker(outlier_cross_encoder, max_length=48).compute_score(PAIRS))
    smoothed = Reranker(outlier_cross_encoder, max_length=48, backend="onnx", quantize="int8")
    smoothed_error = np.abs(np.array(smoothed.compute_score(PAIRS)) - want).max()

    shutil.rmtree(outlier_cross_encoder / onnx_export.ONNX_FOLDER)
    monkeypatch.setattr(onnx_export, "smoothed_copy", lambda model, batches: model)  # int8 as before smoothing
    plain = Reranker(outlier_cross_encoder, max_length=48, backend="onnx", quantize="int8")
    plain_error = np.abs(np.array(plain.compute_score(PAIRS)) - want).max()
    print(f"int8 max |score - torch|: smoothed {smoothed_error:.2e}, plain {plain_error:.2e}")
    assert smoothed_error < plain_error / 3, (smoothed_error, plain_error)
    assert smoothed_error < 0.01


def test_int8_without_calibration_inputs_is_refused(tmp_path):
    path = tc.build_bert_cross_encoder(tmp_path / "ce")
    ranker = Reranker(path)
    cache = onnx_export.OnnxModelCache(str(path), "k")
    with pytest.raises(ValueError, match="int8 needs calibration inputs"):
        cache.model_file(ranker.model, "logits", ["input_ids", "attention_mask"], "int8")


def test_own_calibration_texts_are_used_and_name_their_own_cache_entry(outlier_cross_encoder, monkeypatch):
    from rag_retrieval_integrations.core.backends import smoothing

    seen = []
    real = smoothing.input_ranges

    def spy(model, batches):
        seen.append([b["input_ids"].shape[0] for b in batches])
        return real(model, batches)

    monkeypatch.setattr(smoothing, "input_ranges", spy)
    bundled = Reranker(outlier_cross_encoder, backend="onnx", quantize="int8")
    own = Reranker(
        outlier_cross_encoder, backend="onnx", quantize="int8", calibration=[PAIRS[0], PAIRS[1], "a lone text"]
    )
    assert seen[0] == [16, 16, 16, 16] and seen[1] == [2, 1]  # 64 bundled pairs; the user's two pairs, one text
    assert own.onnx_forward.path != bundled.onnx_forward.path
    texts = [PAIRS[0], PAIRS[1], "a lone text"]
    again = Reranker(outlier_cross_encoder, backend="onnx", quantize="int8", calibration=texts)
    assert again.onnx_forward.path == own.onnx_forward.path and len(seen) == 2  # cached under its texts' hash
    # one int8 entry per output: going back to the bundled set replaces the user's (exports again)
    back = Reranker(outlier_cross_encoder, backend="onnx", quantize="int8")
    assert back.onnx_forward.path == bundled.onnx_forward.path
    assert len(seen) == 3 and not Path(own.onnx_forward.path).exists()


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
