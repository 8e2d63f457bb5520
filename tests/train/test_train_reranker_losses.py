"""Reranker losses: hand-computed values, and equality with sentence-transformers' cross-encoder
losses on the same checkpoint where both define the loss."""

from __future__ import annotations

import math

import pytest
import torch

from rag_retrieval_train.losses import (
    ListNetLoss,
    ListwiseCELoss,
    ListwiseKLCELoss,
    ListwiseKLLoss,
    MarginMSELoss,
    PointwiseBCELoss,
    PointwiseMSELoss,
    RankNetLoss,
)


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_pointwise_bce_by_hand():
    scores, labels = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.25])
    expected = -(math.log(sig(2.0)) + 0.25 * math.log(sig(-1.0)) + 0.75 * math.log(1 - sig(-1.0))) / 2
    assert PointwiseBCELoss()(scores, labels).item() == pytest.approx(expected, rel=1e-6)
    weighted = -(3 * math.log(sig(2.0)) + 3 * 0.25 * math.log(sig(-1.0)) + 0.75 * math.log(1 - sig(-1.0))) / 2
    assert PointwiseBCELoss(pos_weight=3.0)(scores, labels).item() == pytest.approx(weighted, rel=1e-6)


def test_pointwise_mse_by_hand_and_on_teacher_scores():
    scores = torch.tensor([0.0, 1.0])
    assert PointwiseMSELoss()(scores, torch.tensor([1.0, 0.0])).item() == pytest.approx(
        ((0.5 - 1) ** 2 + sig(1.0) ** 2) / 2, rel=1e-6
    )
    # a student equal to its teacher has zero loss on the teacher's raw scores
    assert PointwiseMSELoss(teacher_scores=True)(scores, scores.clone()).item() == pytest.approx(0.0, abs=1e-12)


def test_ranknet_by_hand_skips_ties():
    scores = torch.tensor([[1.0, 0.0, 3.0]])
    labels = torch.tensor([[2.0, 1.0, 1.0]])  # ordered pairs: (0,1), (0,2); (1,2) is a tie
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(2.0))) / 2
    assert RankNetLoss()(scores, labels).item() == pytest.approx(expected, rel=1e-6)
    no_order = RankNetLoss()(scores, torch.ones(1, 3))
    assert no_order.item() == 0.0 and no_order.requires_grad is False


def test_listwise_ce_by_hand_with_temperature():
    scores = torch.tensor([[2.0, 1.0, 0.0]])
    z = math.exp(4.0) + math.exp(2.0) + 1.0
    assert ListwiseCELoss(temperature=0.5)(scores).item() == pytest.approx(-math.log(math.exp(4.0) / z), rel=1e-6)


def test_listnet_by_hand():
    scores, labels = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    p = [sig(1.0), 1 - sig(1.0)]  # softmax of (1, 0), for labels and scores alike
    assert ListNetLoss()(scores, labels).item() == pytest.approx(-(p[0] * math.log(p[0]) + p[1] * math.log(p[1])))


def test_listwise_kl_is_zero_for_the_teacher_and_scales_with_temperature():
    teacher = torch.tensor([[3.0, 1.0, -2.0], [0.0, 0.5, 0.2]])
    assert ListwiseKLLoss()(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-7)
    student = torch.zeros(1, 2)
    p = [sig(2.0), 1 - sig(2.0)]  # teacher (2, 0) at T=1
    kl = p[0] * math.log(p[0] / 0.5) + p[1] * math.log(p[1] / 0.5)
    assert ListwiseKLLoss()(student, torch.tensor([[2.0, 0.0]])).item() == pytest.approx(kl, rel=1e-6)
    p2 = [sig(1.0), 1 - sig(1.0)]  # T=2: teacher (1, 0), times T^2 = 4
    kl2 = 4 * (p2[0] * math.log(p2[0] / 0.5) + p2[1] * math.log(p2[1] / 0.5))
    assert ListwiseKLLoss(temperature=2.0)(student, torch.tensor([[2.0, 0.0]])).item() == pytest.approx(kl2, rel=1e-6)


def test_listwise_kl_ce_weighs_the_label_and_teacher_terms():
    student = torch.tensor([[1.0, 0.5, -1.0], [0.0, 2.0, 0.3]])
    teacher = torch.tensor([[4.0, 3.5, 0.0], [2.0, 1.0, 1.5]])
    ce, kl = ListwiseCELoss()(student).item(), ListwiseKLLoss(temperature=2.0)(student, teacher).item()
    for alpha in (0.0, 0.3, 1.0):
        mixed = ListwiseKLCELoss(label_weight=alpha, temperature=2.0)(student, teacher).item()
        assert mixed == pytest.approx(alpha * ce + (1 - alpha) * kl, rel=1e-6)
    # the student that equals its teacher still pays the label term where the teacher prefers a negative
    assert ListwiseKLCELoss(label_weight=0.5)(teacher.clone(), teacher).item() == pytest.approx(
        0.5 * ListwiseCELoss()(teacher).item(), rel=1e-6
    )
    with pytest.raises(ValueError, match=r"label_weight must be in \[0, 1\]"):
        ListwiseKLCELoss(label_weight=1.5)


def test_margin_mse_by_hand_ignores_offsets():
    teacher = torch.tensor([[5.0, 3.0, 0.0]])
    assert MarginMSELoss()(teacher - 100.0, teacher).item() == pytest.approx(0.0, abs=1e-9)
    student = torch.tensor([[1.0, 0.0, 0.0]])
    # margins (0,1), (0,2), (1,2): student 1, 1, 0; teacher 2, 5, 3
    assert MarginMSELoss()(student, teacher).item() == pytest.approx((1 + 16 + 9) / 3, rel=1e-6)


@pytest.mark.parametrize(
    "loss", [ListwiseCELoss(), ListNetLoss(), RankNetLoss(), MarginMSELoss(), ListwiseKLLoss(), ListwiseKLCELoss()]
)
def test_group_losses_refuse_flat_scores(loss):
    with pytest.raises(ValueError, match="group_size >= 2"):
        loss(torch.zeros(4), torch.zeros(4))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one target per score"):
        PointwiseBCELoss()(torch.zeros(3), torch.zeros(4))


def test_losses_equal_sentence_transformers_on_the_same_checkpoint(bert_cross_encoder):
    """BCE, ListNet and RankNet on our scores equal sentence-transformers' cross-encoder losses
    on the same model and data."""
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import losses as st

    from rag_retrieval_integrations import Reranker

    queries = ["what is a panda?", "capital of france"]
    docs = [
        ["The giant panda is a bear native to China.", "Paris is the capital of France.", "Pandas eat bamboo."],
        ["Paris is the capital and most populous city of France.", "Python is a language.", "A red panda."],
    ]
    labels = [torch.tensor([2.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0])]
    model = CrossEncoder(str(bert_cross_encoder), device="cpu")
    ours = Reranker(bert_cross_encoder)
    scores = torch.tensor(
        [ours.compute_score([(q, d) for d in ds]) for q, ds in zip(queries, docs)], dtype=torch.float32
    )
    label_matrix = torch.stack(labels)
    with torch.no_grad():
        st_listnet = st.ListNetLoss(model)([queries, docs], labels).item()
        st_ranknet = st.RankNetLoss(model)([queries, docs], labels).item()
        flat_q = [q for q, ds in zip(queries, docs) for _ in ds]
        flat_d = [d for ds in docs for d in ds]
        binary = (label_matrix > 0).float().reshape(-1)
        st_bce = st.BinaryCrossEntropyLoss(model)([flat_q, flat_d], binary).item()
    assert ListNetLoss()(scores, label_matrix).item() == pytest.approx(st_listnet, abs=1e-5)
    # sentence-transformers reports RankNet in bits (log base 2, reduction_log="binary")
    assert RankNetLoss()(scores, label_matrix).item() == pytest.approx(st_ranknet * math.log(2), abs=1e-5)
    assert PointwiseBCELoss()(scores.reshape(-1), binary).item() == pytest.approx(st_bce, abs=1e-5)


def test_the_loss_table_is_the_one_source_of_loss_names(tmp_path):
    """Config choices, the distill trainer's losses and the built modules all come from RERANKER_LOSSES."""
    from typing import get_args

    from rag_retrieval_train.config import ConfigError, build_config
    from rag_retrieval_train.distill import DistillTrainConfig
    from rag_retrieval_train.losses.reranker_specs import RERANKER_LOSSES
    from rag_retrieval_train.reranker import RerankerLoss, RerankerTrainConfig, build_reranker_loss

    assert get_args(RerankerLoss) == tuple(RERANKER_LOSSES)
    paths = {"model_name_or_path": "m", "train_data": str(tmp_path / "d.jsonl"), "output_dir": str(tmp_path / "o")}
    for name, spec in RERANKER_LOSSES.items():
        config = build_config(RerankerTrainConfig, {**paths, "loss": name, "train_group_size": 4}, {})
        assert isinstance(build_reranker_loss(config), torch.nn.Module)
        if spec.teacher_scores:
            build_config(DistillTrainConfig, {**paths, "loss": name, "teacher_model": "t"}, {})
        else:
            with pytest.raises(ConfigError, match="distill trains with one of"):
                build_config(DistillTrainConfig, {**paths, "loss": name, "teacher_model": "t"}, {})
