"""backend="onnx" (fp32 and int8) against the PyTorch backend, on the tiny models of each encoder family.

The int8 bounds are what dynamic quantization gives on these random tiny models (measured, with
margin) and are the ones docs/backends.md states: a cross-encoder logit or a cosine within 0.01,
a ColBERT MaxSim (a sum over the query's tokens) within 0.05.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from kit import checkpoints as tc
from kit import colbert as tiny_colbert

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import ColBERTIndex, MRLIndex
from rag_retrieval_integrations.core.backends import ONNX_FOLDER, onnx_export, onnx_runtime

pytest.importorskip("onnxruntime")

FP32_ATOL = 1e-4
INT8_ATOL = {"cross-encoder": 0.01, "embedding": 0.01, "colbert": 0.05}
QUERIES = ["what is a panda?", "who wrote Hamlet?", "capital of France"]
DOCS = [
    "The giant panda is a bear native to China.",
    "Hamlet is a tragedy written by William Shakespeare.",
    "Paris is the capital and largest city of France. " * 12,  # past max_length: truncated or split
    "snakes",
    "Mount Everest is the highest mountain above sea level.",
]
PAIRS = [(q, d) for q in QUERIES for d in DOCS]
BUILDERS = {
    "cross-encoder": tc.build_bert_cross_encoder,
    "cross-encoder-2-logit": lambda path: tc.build_bert_cross_encoder(path, num_labels=2),
    "cross-encoder-xlmr": tc.build_xlmr_cross_encoder,  # no token_type_ids
    "embedding": tc.build_bi_encoder,
    "colbert": tiny_colbert.build_tiny_colbert,
}


def family(name: str) -> str:
    return "cross-encoder" if name.startswith("cross-encoder") else name


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Each tiny model in a folder of this module's own (the export cache is written into it)."""
    root = tmp_path_factory.mktemp("onnx-models")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def torch_rankers(models) -> dict:
    return {name: Reranker(path, max_length=48) for name, path in models.items()}


@pytest.fixture(scope="module")
def onnx_rankers(models) -> dict:
    return {name: Reranker(path, max_length=48, backend="onnx") for name, path in models.items()}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_fp32_equals_torch(name, torch_rankers, onnx_rankers):
    onnx = onnx_rankers[name]
    assert onnx.backend == "onnx" and onnx.onnx_forward is not None
    want = np.array(torch_rankers[name].compute_score(PAIRS))
    np.testing.assert_allclose(onnx.compute_score(PAIRS), want, atol=FP32_ATOL, rtol=0)
    # one pair alone (a batch of one, no padding) and the long document alone
    np.testing.assert_allclose(onnx.compute_score(PAIRS[:1]), want[:1], atol=FP32_ATOL, rtol=0)
    np.testing.assert_allclose(onnx.compute_score([PAIRS[2]]), want[2:3], atol=FP32_ATOL, rtol=0)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_int8_within_its_bound(name, models, torch_rankers):
    int8 = Reranker(models[name], max_length=48, backend="onnx", quantize="int8")
    assert "int8" in int8.onnx_forward.path
    got, want = np.array(int8.compute_score(PAIRS)), np.array(torch_rankers[name].compute_score(PAIRS))
    np.testing.assert_allclose(got, want, atol=INT8_ATOL[family(name)], rtol=0)
    assert np.abs(got - want).max() > 0  # it is another model, not the fp32 one


@pytest.mark.parametrize("name", ["cross-encoder", "embedding", "colbert"])
def test_split_max_rank_many_and_normalize_work_the_same(name, models):
    options = {"max_length": 24, "long_doc": "split-max"}
    torch_ranker, onnx = Reranker(models[name], **options), Reranker(models[name], backend="onnx", **options)
    for want, got in zip(
        torch_ranker.rank_many(QUERIES, [DOCS] * 3, normalize=True), onnx.rank_many(QUERIES, [DOCS] * 3, normalize=True)
    ):
        assert got.indices == want.indices
        np.testing.assert_allclose(got.scores, want.scores, atol=FP32_ATOL, rtol=0)
        assert all(0 < s < 1 for s in got.scores)


def test_embedding_vectors_and_mrl_index(models):
    torch_ranker, onnx = Reranker(models["embedding"]), Reranker(models["embedding"], backend="onnx")
    np.testing.assert_allclose(onnx.encode_documents(DOCS), torch_ranker.encode_documents(DOCS), atol=1e-5)
    indexes = []
    for ranker in (torch_ranker, onnx):
        index = MRLIndex(ranker)
        index.add(DOCS, ids=[f"d{i}" for i in range(len(DOCS))])
        indexes.append(index)
    for want, got in zip(*(index.search_many(QUERIES, k=3) for index in indexes)):
        assert [h.id for h in got] == [h.id for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-5)


def test_colbert_index_on_onnx(onnx_rankers, torch_rankers):
    results = []
    for ranker in (torch_rankers["colbert"], onnx_rankers["colbert"]):
        index = ColBERTIndex(ranker, faiss_index="none")
        index.add(DOCS, ids=[f"d{i}" for i in range(len(DOCS))])
        results.append(index.search_many(QUERIES, k=3))
    for want, got in zip(*results):
        assert [h.id for h in got] == [h.id for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-2)  # float16 storage


def test_langchain_compressor_on_onnx(onnx_rankers, torch_rankers):
    from langchain_core.documents import Document

    from rag_retrieval_integrations.langchain import RagRetrievalReranker

    docs = [Document(page_content=d, id=str(i)) for i, d in enumerate(DOCS)]
    got, want = (
        RagRetrievalReranker(model=rankers["cross-encoder"], top_n=3).compress_documents(docs, QUERIES[0])
        for rankers in (onnx_rankers, torch_rankers)
    )
    assert [d.id for d in got] == [d.id for d in want]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in got], [d.metadata["relevance_score"] for d in want], atol=FP32_ATOL
    )


def test_eval_cli_takes_the_encoder_backend(models, tmp_path, capsys):
    import json

    from rag_retrieval_integrations.evaluation.cli import main

    data = tmp_path / "set.jsonl"
    rows = [
        {"query": q, "candidates": [{"content": d, "label": int(i == j)} for j, d in enumerate(DOCS)]}
        for i, q in enumerate(QUERIES)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reports = []
    for extra in ([], ["--option", "backend=onnx"]):
        main(["rerank", "--data", str(data), "--model", str(models["cross-encoder"]), "--quiet", *extra])
        reports.append(capsys.readouterr().out)
    assert "MAP" in reports[0] or "map" in reports[0].lower()
    assert reports[0] == reports[1]


# ---- the export cache --------------------------------------------------------------------------


def count_exports(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = onnx_export.export_onnx

    def counting(model, output, input_names, path, **kwargs):
        calls.append(output)
        real(model, output, input_names, path, **kwargs)

    monkeypatch.setattr(onnx_export, "export_onnx", counting)
    return calls


def test_the_cache_is_reused_and_invalidated_when_the_weights_change(tmp_path, monkeypatch):
    path = tc.build_bert_cross_encoder(tmp_path / "ce")
    exports = count_exports(monkeypatch)
    first = Reranker(path, backend="onnx")
    cached = first.onnx_forward.path
    assert exports == ["logits"] and cached.startswith(str(path / ONNX_FOLDER))
    mtime = (path / ONNX_FOLDER).stat().st_mtime_ns, os.stat(cached).st_mtime_ns

    second = Reranker(path, backend="onnx")
    assert exports == ["logits"] and second.onnx_forward.path == cached  # no second export
    assert os.stat(cached).st_mtime_ns == mtime[1]
    int8 = Reranker(path, backend="onnx", quantize="int8")  # quantized from the cached fp32 file
    assert exports == ["logits"] and int8.onnx_forward.path != cached

    tc.build_bert_cross_encoder(path, seed=7)  # retrained: other weights in the same folder
    retrained = Reranker(path, backend="onnx")
    assert exports == ["logits", "logits"] and retrained.onnx_forward.path != cached
    assert not os.path.exists(cached)  # the stale export is removed
    np.testing.assert_allclose(
        retrained.compute_score(PAIRS), Reranker(path).compute_score(PAIRS), atol=FP32_ATOL, rtol=0
    )


def test_a_read_only_checkpoint_caches_in_the_cache_folder(tmp_path, monkeypatch):
    path = tc.build_bert_cross_encoder(tmp_path / "ce")
    monkeypatch.setenv("RAG_RETRIEVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_export, "_writable", lambda folder: False)  # tests run as root: chmod would not stop us
    exports = count_exports(monkeypatch)
    first, second = Reranker(path, backend="onnx"), Reranker(path, backend="onnx")
    assert first.onnx_forward.path == second.onnx_forward.path
    assert first.onnx_forward.path.startswith(str(tmp_path / "cache" / "onnx")) and exports == ["logits"]
    assert not (path / ONNX_FOLDER).exists()


def test_a_copied_checkpoint_reuses_the_copied_cache(tmp_path, monkeypatch):
    path = tc.build_bert_cross_encoder(tmp_path / "ce")
    Reranker(path, backend="onnx")
    shutil.copytree(path, tmp_path / "copy")
    exports = count_exports(monkeypatch)
    Reranker(tmp_path / "copy", backend="onnx")
    assert exports == []  # same weights, same fingerprint: the export travels with the folder


# ---- options and errors ------------------------------------------------------------------------


def test_missing_onnxruntime_is_one_clear_error(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ImportError, match=r"backend='onnx' needs onnxruntime .*pip install 'rag-retrieval\[onnx\]'"):
        Reranker(models["cross-encoder"], backend="onnx")
    Reranker(models["cross-encoder"])  # the PyTorch backend does not need it


@pytest.mark.parametrize(
    "flags, warns", [({"avx2", "fma"}, True), ({"avx2", "avx512_vnni"}, False), ({"avx_vnni"}, False), (set(), False)]
)
def test_int8_warns_on_a_cpu_without_int8_dot_products(models, monkeypatch, caplog, flags, warns):
    monkeypatch.setattr(onnx_runtime, "cpu_flags", lambda: flags)
    with caplog.at_level(logging.WARNING, logger="rag_retrieval_integrations"):
        Reranker(models["cross-encoder"], backend="onnx", quantize="int8")
    assert ("without int8 dot-product instructions" in caplog.text) is warns
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rag_retrieval_integrations"):
        Reranker(models["cross-encoder"], backend="onnx")  # fp32 never warns
    assert "int8" not in caplog.text


@pytest.mark.parametrize("flags, bits", [({"avx2", "fma"}, 7), ({"avx2", "avx512_vnni"}, 8), (set(), 7)])
def test_int8_weights_use_7_bits_where_the_cpu_kernels_saturate_int16(models, monkeypatch, tmp_path, flags, bits):
    """Without VNNI, onnxruntime's u8s8 kernels add two products into a saturating int16; 7-bit
    weights keep every sum in range (a BERT with outlier channels scored 2.4e-2 off, not 1e-4)."""
    import onnx
    from onnx import numpy_helper

    monkeypatch.setattr(onnx_runtime, "cpu_flags", lambda: flags)
    ranker = Reranker(shutil.copytree(models["cross-encoder"], tmp_path / "ce"), backend="onnx", quantize="int8")
    graph = onnx.load(ranker.onnx_forward.path).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    largest = max(int(np.abs(w.astype(np.int16)).max()) for w in weights)
    assert largest == {7: 64, 8: 127}[bits]  # symmetric per-channel scales: each row reaches the top
    monkeypatch.setattr(onnx_runtime, "cpu_flags", lambda: {"avx2"} if bits == 8 else {"avx512_vnni"})
    other = Reranker(tmp_path / "ce", backend="onnx", quantize="int8")  # the other machine's cache entry
    assert other.onnx_forward.path != ranker.onnx_forward.path


def test_cpu_flags_are_read_from_proc_cpuinfo():
    flags = onnx_runtime.cpu_flags()
    if sys.platform.startswith("linux") and flags:
        assert onnx_runtime.has_int8_dot_product(flags) == bool(flags & set(onnx_runtime.INT8_DOT_PRODUCT_FLAGS))
    assert onnx_runtime.has_int8_dot_product(set()) is None


@pytest.mark.parametrize(
    "options, error, message",
    [
        (
            {"backend": "tensorrt"},
            ValueError,
            r"backend must be one of \['torch', 'torch-compile', 'onnx'\], got 'tensorrt'",
        ),
        ({"quantize": "int4", "backend": "onnx"}, ValueError, r"quantize must be one of \[None, 'int8'\], got 'int4'"),
        ({"quantize": "int8"}, ValueError, r"quantize='int8' needs backend='onnx'"),
        ({"backend": "onnx", "device": "meta"}, ValueError, r"backend='onnx' runs on the CPU .*device='meta'"),
        ({"backend": "onnx", "dtype": "float16"}, ValueError, r"backend='onnx' runs in float32 .*'float16'"),
    ],
)
def test_bad_encoder_backends_name_the_value(models, options, error, message):
    with pytest.raises(error, match=message):
        Reranker(models["cross-encoder"], **options)


def test_families_without_a_backend_refuse_the_option(tmp_path):
    path = tc.build_decoder_llm(tmp_path / "llm")
    with pytest.raises(TypeError, match="unexpected option.*backend"):
        Reranker(path, backend="onnx")


def test_a_failed_export_is_named_and_leaves_no_cache_entry(tmp_path, monkeypatch):
    import torch

    from rag_retrieval_integrations.core.errors import OnnxExportError

    path = tc.build_bert_cross_encoder(tmp_path / "ce")

    def unsupported(*args, **kwargs):
        raise RuntimeError("aten::made_up_op is not supported")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with pytest.raises(
        OnnxExportError, match=r"could not export BertForSequenceClassification .*made_up_op.*backend='torch'"
    ):
        Reranker(path, backend="onnx")
    assert list((path / ONNX_FOLDER).iterdir()) == []  # nothing a later load could take for an export


def test_a_resaved_head_of_the_same_size_is_exported_again(tmp_path, monkeypatch):
    """Only the classifier changed (same file size): the cached export must not be reused."""
    import torch
    from transformers import AutoModelForSequenceClassification

    # 4 MB of weights, the head at the end: where the earlier fingerprint's 16 sampled blocks did not reach
    path = tc.build_bert_cross_encoder(tmp_path / "ce", max_positions=32768)
    stale = Reranker(path, backend="onnx").onnx_forward.path
    model = AutoModelForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        model.classifier.weight.add_(0.5)
        model.classifier.bias.add_(1.0)
    size = (path / "model.safetensors").stat().st_size
    model.save_pretrained(path)
    assert (path / "model.safetensors").stat().st_size == size
    exports = count_exports(monkeypatch)
    fresh = Reranker(path, backend="onnx")
    assert exports == ["logits"] and fresh.onnx_forward.path != stale
    np.testing.assert_allclose(fresh.compute_score(PAIRS), Reranker(path).compute_score(PAIRS), atol=FP32_ATOL, rtol=0)


DAMAGES = {
    "garbage": lambda data: b"garbage" * 10,
    "half": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "zeroed": lambda data: bytes(len(data)),
}


def test_a_corrupt_cached_export_is_exported_again_with_a_warning(tmp_path, monkeypatch, caplog):
    """A cache is a cache: a damaged model.onnx once failed every load in onnxruntime (InvalidProtobuf)."""
    path = tc.build_bert_cross_encoder(tmp_path / "ce")
    cached = Path(Reranker(path, backend="onnx").onnx_forward.path)
    data = cached.read_bytes()
    for name, damage in DAMAGES.items():  # each damage is seen (the entry's manifest), without exporting again
        cached.write_bytes(damage(data))
        assert onnx_export._entry_problem(cached.parent) is not None, name
    cached.write_bytes(data)
    assert onnx_export._entry_problem(cached.parent) is None
    (cached.parent / onnx_export.ENTRY_MANIFEST).unlink()  # an entry of an older version, or cut short
    assert "manifest" in onnx_export._entry_problem(cached.parent)
    cached.write_bytes(DAMAGES["garbage"](data))
    exports = count_exports(monkeypatch)
    with caplog.at_level(logging.WARNING):
        ranker = Reranker(path, backend="onnx")
    assert exports == ["logits"] and "exporting it again" in caplog.text
    np.testing.assert_allclose(ranker.compute_score(PAIRS), Reranker(path).compute_score(PAIRS), atol=FP32_ATOL, rtol=0)


def test_no_writable_cache_names_rag_retrieval_cache(tmp_path, monkeypatch):
    from rag_retrieval_integrations.core.errors import OnnxExportError

    path = tc.build_bert_cross_encoder(tmp_path / "ce")
    monkeypatch.setattr(onnx_export, "_writable", lambda folder: False)  # a read-only checkpoint
    monkeypatch.delenv("RAG_RETRIEVAL_CACHE", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("RAG_RETRIEVAL_CACHE", str(tmp_path / "file" / "cache"))  # cannot be created
    with pytest.raises(OnnxExportError, match="set RAG_RETRIEVAL_CACHE to a writable folder"):
        Reranker(path, backend="onnx")
