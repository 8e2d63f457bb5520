"""backend="torch-compile" against eager PyTorch, on the tiny models of each encoder family: the
same scores (float rounding apart), batches of any size on one compiled graph, and the errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from kit import checkpoints as tc
from kit import colbert as tiny_colbert
from torch._dynamo.utils import counters

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core.backends import compiled

ATOL = 1e-5
QUERIES = ["what is a panda?", "who wrote Hamlet?"]
DOCS = [
    "The giant panda is a bear native to China.",
    "Hamlet is a tragedy written by William Shakespeare.",
    "Paris is the capital and largest city of France. " * 12,  # past max_length: split into windows
    "snakes",
]
PAIRS = [(q, d) for q in QUERIES for d in DOCS]
BUILDERS = {
    "cross-encoder": tc.build_bert_cross_encoder,
    "embedding": tc.build_bi_encoder,
    "colbert": tiny_colbert.build_tiny_colbert,
}

pytestmark = pytest.mark.skipif(
    not any(shutil.which(name) for name in compiled.CPP_COMPILERS), reason="torch.compile needs a C++ compiler"
)


# ColBERT compiles the same module as the embedding family (its first transformer, through
# first_transformer): the default run checks the cross-encoder and the embedding family, -m slow
# ColBERT too (each family's compile costs about 15 s on 2 cores)
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n == "colbert" else []) for n in BUILDERS]
)
def test_scores_equal_eager_pytorch_on_every_batch_shape(name, tmp_path):
    path = BUILDERS[name](tmp_path / name)
    options = {"max_length": 24, "long_doc": "split-max", "batch_size": 3}
    eager, fast = Reranker(path, **options), Reranker(path, backend="torch-compile", **options)
    assert fast.backend == "torch-compile"
    want = np.array(eager.compute_score(PAIRS))
    graphs = counters["stats"]["unique_graphs"]
    np.testing.assert_allclose(fast.compute_score(PAIRS), want, atol=ATOL, rtol=0)
    assert counters["stats"]["unique_graphs"] > graphs, "the scores came from a compiled graph"
    # another batch size and a single pair: the dynamic graph, not a stale shape
    np.testing.assert_allclose(fast.compute_score(PAIRS[:5], batch_size=5), want[:5], atol=ATOL, rtol=0)
    np.testing.assert_allclose(fast.compute_score(PAIRS[1:2]), want[1:2], atol=ATOL, rtol=0)
    got = fast.rank(QUERIES[0], DOCS, normalize=True)
    assert got.indices == eager.rank(QUERIES[0], DOCS, normalize=True).indices
    # freezing is switched on around this model's calls only
    assert torch._inductor.config.freezing is False


def test_quantize_needs_onnx(tmp_path):
    path = tc.build_bert_cross_encoder(tmp_path / "ce")
    with pytest.raises(ValueError, match="quantize='int8' needs backend='onnx'"):
        Reranker(path, backend="torch-compile", quantize="int8")


def test_a_missing_cpp_compiler_is_a_clear_error_at_load(tmp_path, monkeypatch):
    path = tc.build_bert_cross_encoder(tmp_path / "ce")
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler.*backend='torch'"):
        Reranker(path, backend="torch-compile", device="cpu")


def test_a_model_without_a_transformer_names_the_backend_asked_for():
    from rag_retrieval_integrations.core.models.encoder_backend import first_transformer

    with pytest.raises(ValueError, match=r"backend='torch-compile' runs a transformer.*use backend='torch'"):
        first_transformer([torch.nn.Identity()], "static-model", "torch-compile")
