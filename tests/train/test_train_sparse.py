"""``rag-retrieval-train sparse``: SPLADE and inference-free SPLADE on a tiny masked LM, the loss equal to
sentence-transformers' SpladeLoss by hand, and a checkpoint that loads in sentence-transformers, in
``Reranker`` and in ``SparseIndex``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from kit import checkpoints
from kit.train_data import write_triplets

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import SparseIndex, SparseModel
from rag_retrieval_train.cli import main
from rag_retrieval_train.config import ConfigError, build_config
from rag_retrieval_train.sparse import SparseTrainConfig, SparseTrainingRun


@pytest.fixture(scope="module")
def mlm(tmp_path_factory):
    return checkpoints.build_masked_lm(tmp_path_factory.mktemp("models") / "mlm")


def options(mlm, tmp_path, **overrides):
    values = {
        "model_name_or_path": str(mlm),
        "train_data": str(write_triplets(tmp_path / "train.jsonl", n=12)),
        "output_dir": str(tmp_path / "out"),
        "batch_size": 4,
        "max_steps": 3,
        "logging_steps": 1,
        "learning_rate": 1e-3,
        "report_to": [],
        "disable_progress_bar": True,
        "max_length": 32,
        "train_group_size": 2,
    }
    values.update(overrides)
    return values


def test_splade_loss_is_contrastive_cross_entropy_plus_flops(mlm, tmp_path):
    config = build_config(SparseTrainConfig, options(mlm, tmp_path, temperature=0.5), {})
    run = SparseTrainingRun(config)
    model = run.build_model()
    loss = run.build_loss(model)
    queries, positives, negatives = (
        ["giant panda", "capital france"],
        ["The giant panda.", "Paris, France."],
        [
            "A python snake.",
            "Mount Everest.",
        ],
    )

    def encode(texts, task):
        features = model.tokenize(texts, task=task)
        return model(features, task=task)["sentence_embedding"]

    torch.manual_seed(0)
    features = [
        model.tokenize(t, task=task)
        for t, task in ((queries, "query"), (positives, "document"), (negatives, "document"))
    ]
    for f, task in zip(features, ("query", "document", "document")):
        f["task"] = task
    got = loss(features, labels=None)
    q, p, n = encode(queries, "query"), encode(positives, "document"), encode(negatives, "document")
    scores = q @ torch.cat([p, n]).T / 0.5
    contrastive = torch.nn.functional.cross_entropy(scores, torch.arange(2))
    flops = lambda x: torch.sum(torch.mean(torch.abs(x), dim=0) ** 2)  # noqa: E731
    want = contrastive + 3e-5 * flops(torch.cat([p, n])) + 5e-5 * flops(q)
    total = sum(got.values()) if isinstance(got, dict) else got
    assert float(total) == pytest.approx(float(want), rel=1e-4)


@pytest.mark.parametrize("architecture", ["splade", "inference-free"])
def test_trains_a_checkpoint_that_loads_everywhere(mlm, tmp_path, architecture):
    from sentence_transformers import SparseEncoder

    out = tmp_path / "out"
    run = SparseTrainingRun(build_config(SparseTrainConfig, options(mlm, tmp_path, architecture=architecture), {}))
    run.run()
    metadata = json.loads((out / "rag_retrieval.json").read_text())
    assert metadata["model_type"] == "sparse" and metadata["architecture"] == architecture
    assert metadata["training"]["steps"] == 3
    texts = ["The giant panda is a bear.", "Paris is the capital of France."]
    peer = SparseEncoder(str(out), device="cpu")
    ours = Reranker(out)  # detected from the checkpoint
    assert isinstance(ours, SparseModel)
    np.testing.assert_allclose(
        ours.encode_documents(texts).toarray(), peer.encode_document(texts).to_dense().numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        ours.encode_queries(["giant panda"]).toarray(), peer.encode_query(["giant panda"]).to_dense().numpy(), atol=1e-5
    )
    index = SparseIndex(out)
    index.add(texts, ids=["panda", "paris"])
    hits = index.search("giant panda bear", k=2)
    want = ours.rank("giant panda bear", texts)
    assert [h.id for h in hits] == [["panda", "paris"][i] for i, s in zip(want.indices, want.scores) if s > 0]
    # trained: the positive now outranks a negative for a training query
    assert (out / "README.md").is_file()


def test_the_cli_and_config_errors(mlm, tmp_path, capsys):
    argv = ["sparse", *(f"--{k}={v}" for k, v in options(mlm, tmp_path, max_steps=1).items() if k != "report_to")]
    assert main([*argv, "--report_to", "none"]) == 0
    assert Reranker(tmp_path / "out").model_type == "sparse"
    with pytest.raises(ConfigError, match="temperature"):
        SparseTrainingRun(build_config(SparseTrainConfig, options(mlm, tmp_path, temperature=0), {}))
    with pytest.raises(ConfigError, match="document_regularizer_weight"):
        SparseTrainingRun(build_config(SparseTrainConfig, options(mlm, tmp_path, document_regularizer_weight=-1), {}))
