"""``rag-retrieval-train colbert``: the losses against hand computation, memory-bounded scoring,
and the CLI end to end (a checkpoint MultiVectorEncoder and ``Reranker(path)`` load as trained)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kit import colbert as tc

pytest.importorskip("datasets")

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import ColBERTReranker
from rag_retrieval_integrations.core.models.maxsim import maxsim

ROWS = [
    ("what is a panda?", "The giant panda is a bear native to China.", "Paris is the capital of France."),
    ("capital of France", "Paris is the capital and most populous city of France.", "Pandas eat bamboo."),
    ("who wrote Hamlet?", "Shakespeare wrote Hamlet, Macbeth and many other plays.", "Mount Everest is high."),
]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tc.build_tiny_colbert(tmp_path_factory.mktemp("train-colbert") / "tiny-colbert")


@pytest.fixture()
def model(model_path):
    from sentence_transformers import MultiVectorEncoder

    return MultiVectorEncoder(str(model_path), device="cpu")


def _features(model, texts: list[str], task: str) -> dict:
    prompt = model.prompts[task]
    features = model.preprocess(texts, prompt=prompt, task=task)
    return {**features, "task": task}


def _vectors(model, texts: list[str], task: str) -> list[torch.Tensor]:
    encode = model.encode_query if task == "query" else model.encode_document
    return encode(texts)


# ---- losses ---------------------------------------------------------------------------------


def test_contrastive_loss_equals_cross_entropy_over_every_document_of_the_batch(model):
    from rag_retrieval_train.losses import ColBERTContrastiveLoss

    model.eval()  # no dropout: the loss's forward pass and the reference encode alike
    queries, positives, negatives = (list(c) for c in zip(*ROWS))
    loss = ColBERTContrastiveLoss(model, temperature=0.5)
    value = loss(
        [
            _features(model, queries, "query"),
            _features(model, positives, "document"),
            _features(model, negatives, "document"),
        ]
    )
    q = _vectors(model, queries, "query")
    docs = _vectors(model, positives, "document") + _vectors(model, negatives, "document")
    scores = maxsim(q, docs) / 0.5  # candidates: all 3 positives and all 3 hard negatives
    expected = F.cross_entropy(scores, torch.arange(3))
    assert value.item() == pytest.approx(expected.item(), abs=1e-4)


def test_distillation_loss_equals_kl_to_the_teacher(model):
    from rag_retrieval_train.losses import ColBERTDistillKLLoss

    model.eval()
    queries = [r[0] for r in ROWS]
    columns = [[r[1] for r in ROWS], [r[2] for r in ROWS]]
    teacher = torch.tensor([[3.0, -1.0], [0.5, 0.0], [2.0, 1.0]])
    loss = ColBERTDistillKLLoss(model, temperature=2.0, teacher_temperature=0.5)
    value = loss([_features(model, queries, "query")] + [_features(model, c, "document") for c in columns], teacher)
    q = _vectors(model, queries, "query")
    student = torch.stack(
        [maxsim([q[i]], [_vectors(model, [c[i]], "document")[0] for c in columns])[0] for i in range(3)]
    )
    p = F.softmax(teacher / 0.5, dim=-1)
    expected = 4.0 * (p * (p.log() - F.log_softmax(student / 2.0, dim=-1))).sum(-1).mean()  # T^2 * mean KL
    assert value.item() == pytest.approx(expected.item(), abs=1e-4)


def test_scoring_is_chunked_and_chunking_changes_nothing(model, monkeypatch):
    """With a small budget no (queries x documents x query tokens x document tokens) block of the whole
    batch is ever built, and the loss and its gradients are those of one unchunked computation."""
    from rag_retrieval_train.losses import ColBERTContrastiveLoss

    model.eval()
    queries, positives, negatives = (list(c) for c in zip(*ROWS))
    batch = [
        _features(model, queries, "query"),
        _features(model, positives, "document"),
        _features(model, negatives, "document"),
    ]
    largest = []
    einsum = torch.einsum

    def recording_einsum(equation, *operands):
        out = einsum(equation, *operands)
        largest.append(out.numel())
        return out

    results = {}
    for budget in (10**9, 2_000):
        model.zero_grad()
        largest.clear()
        monkeypatch.setattr(torch, "einsum", recording_einsum)
        value = ColBERTContrastiveLoss(model, chunk_elements=budget)(batch)
        monkeypatch.setattr(torch, "einsum", einsum)
        value.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[budget] = (value.item(), grads, max(largest))
    q_tokens = batch[0]["input_ids"].shape[1]
    d_tokens = max(batch[1]["input_ids"].shape[1], batch[2]["input_ids"].shape[1])
    whole = 3 * 3 * q_tokens * d_tokens  # one group: 3 queries x 3 documents
    assert results[10**9][2] >= whole > results[2_000][2]
    assert results[2_000][0] == pytest.approx(results[10**9][0], abs=1e-5)
    torch.testing.assert_close(results[2_000][1], results[10**9][1], atol=1e-5, rtol=1e-4)


# ---- the trainer end to end -----------------------------------------------------------------


def _write_data(folder: Path) -> tuple[Path, Path]:
    triples = folder / "triples.jsonl"
    triples.write_text(
        "".join(
            json.dumps({"query": q, "pos": [p], "neg": [n, "Water boils at 100 degrees."]}) + "\n"
            for q, p, n in ROWS * 2
        )
    )
    scored = folder / "scored.jsonl"
    scored.write_text(
        "".join(
            json.dumps({"query": q, "pos": [p, n, "Water boils."], "scores": [4.0, -1.0, 0.5]}) + "\n"
            for q, p, n in ROWS
        )
    )
    return triples, scored


def test_cli_trains_a_checkpoint_that_loads_everywhere(tmp_path, model_path):
    from sentence_transformers import MultiVectorEncoder

    from rag_retrieval_train.cli import main
    from rag_retrieval_train.colbert import ColBERTTrainConfig, ColBERTTrainingRun
    from rag_retrieval_train.config import build_config

    triples, scored = _write_data(tmp_path)
    backbone = model_path.with_name(model_path.name + "-backbone")
    out = tmp_path / "out"
    flags = {
        "model_name_or_path": str(backbone),
        "train_data": str(triples),
        "output_dir": str(out),
        "max_steps": "2",
        "batch_size": "3",
        "dim": "8",
        "query_length": "10",
        "max_length": "32",
        "report_to": "none",
        "learning_rate": "1e-3",
        "train_group_size": "3",
        "logging_steps": "1",
        "save_steps": "2",
    }
    run = ColBERTTrainingRun(build_config(ColBERTTrainConfig, {}, flags))
    run.run()
    # the markers were put before every column of the training batches
    assert run.trainer.data_collator.prompts == {
        "query": "[Q] ",
        "positive": "[D] ",
        "negative_1": "[D] ",
        "negative_2": "[D] ",
    }
    metadata = json.loads((out / "rag_retrieval.json").read_text())
    assert metadata["model_type"] == "colbert" and metadata["embedding_dim"] == 8 and metadata["query_length"] == 10
    assert metadata["training"]["steps"] == 2
    # trained at 32 document tokens; saved for inference at the backbone's own 256 (its tokenizer's limit)
    assert metadata["training_document_length"] == 32 and metadata["document_length"] == 256

    texts = ["what is a panda?", "The giant panda is a bear, native to China."]
    trained = run.trainer.model.eval()
    st = MultiVectorEncoder(str(out), device="cpu")
    ours = Reranker(out)  # no arguments: the kind comes from the checkpoint
    assert isinstance(ours, ColBERTReranker) and ours.embedding_dim == 8
    long_doc = "The giant panda is a bear native to China and it eats bamboo. " * 20
    assert ours.max_length == st[0].document_length == 256
    assert len(ours.encode_documents([long_doc])[0]) > 200  # not cut at the 32 tokens of training
    for a, b, c in zip(
        trained.encode_query(texts[:1]) + trained.encode_document(texts[1:]),
        st.encode_query(texts[:1]) + st.encode_document(texts[1:]),
        ours.encode_queries(texts[:1]) + ours.encode_documents(texts[1:]),
    ):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-5)
        np.testing.assert_allclose(c, a.numpy(), atol=1e-5)
    assert trained.encode_query(texts[:1])[0].shape == (10, 8)

    # continued training from that checkpoint with teacher scores, through the CLI
    assert (
        main(
            [
                "colbert",
                "--model_name_or_path",
                str(out),
                "--train_data",
                str(scored),
                "--output_dir",
                str(tmp_path / "distilled"),
                "--loss",
                "distill",
                "--train_group_size",
                "3",
                "--max_steps",
                "1",
                "--batch_size",
                "3",
                "--report_to",
                "none",
            ]
        )
        == 0
    )
    distilled = Reranker(tmp_path / "distilled")
    assert distilled.embedding_dim == 8 and distilled.query_length == 10  # the checkpoint's settings are kept


def test_config_errors_name_the_key():
    from rag_retrieval_train.colbert import ColBERTTrainConfig
    from rag_retrieval_train.config import ConfigError, build_config

    base = {"model_name_or_path": "m", "train_data": "d", "output_dir": "o"}
    with pytest.raises(ConfigError, match="train_group_size >= 2"):
        build_config(ColBERTTrainConfig, {**base, "loss": "distill", "train_group_size": 1}, {})
    with pytest.raises(ConfigError, match="loss must be one of"):
        build_config(ColBERTTrainConfig, {**base, "loss": "mse"}, {})
    with pytest.raises(ConfigError, match="dim must be positive"):
        build_config(ColBERTTrainConfig, base, {"dim": "0"})


def test_inference_document_length_can_be_set(tmp_path, model_path):
    from rag_retrieval_train.colbert import ColBERTTrainConfig, ColBERTTrainingRun
    from rag_retrieval_train.config import build_config

    triples, _ = _write_data(tmp_path)
    flags = {
        "model_name_or_path": str(model_path.with_name(model_path.name + "-backbone")),
        "train_data": str(triples),
        "output_dir": str(tmp_path / "out"),
        "max_steps": "1",
        "batch_size": "3",
        "dim": "8",
        "max_length": "32",
        "inference_document_length": "64",
        "report_to": "none",
    }
    ColBERTTrainingRun(build_config(ColBERTTrainConfig, {}, flags)).run()
    assert Reranker(tmp_path / "out").max_length == 64
