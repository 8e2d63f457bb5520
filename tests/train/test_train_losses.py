"""The embedding-training losses: hand-computed values, sentence-transformers parity, gradients, errors.

Expected numbers come from explicit python/numpy math written here, never from the code under
test. sentence-transformers is imported inside the tests that need it, so that the spawned
processes of the distributed test start quickly.
"""

from __future__ import annotations

import math
import os
import socket
import sys
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rag_retrieval_train.losses import EmbeddingDistillationLoss, InfoNCELoss, MatryoshkaLoss, PreferenceKLLoss

QUERIES = ["what is a panda?", "capital of france", "who wrote hamlet", "boiling point of water"]
POSITIVES = [
    "The giant panda is a bear native to China.",
    "Paris is the capital of France.",
    "Hamlet is a tragedy by William Shakespeare.",
    "Water boils at 100 degrees Celsius at sea level.",
]
NEGATIVES = [
    "Pandas is a Python library.",
    "Lyon is a city in France.",
    "Macbeth is set in Scotland.",
    "Ice melts at zero degrees.",
]


# ----------------------------------------------------------------------------- numpy references


def np_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_info_nce(queries: np.ndarray, doc_columns: list[np.ndarray], temperature: float) -> float:
    """Cross-entropy of each query over every document of the batch, target its own positive (row i)."""
    candidates = np_normalize(np.concatenate(doc_columns))
    log_probs = np_log_softmax(np_normalize(queries) @ candidates.T / temperature)
    return float(-np.mean([log_probs[i, i] for i in range(len(queries))]))


def np_margin(student_sim: np.ndarray, teacher_sim: np.ndarray, margin: float) -> float:
    """The relative-similarity margin term by brute force over all (i, j, k)."""
    total, count = 0.0, 0
    batch = len(student_sim)
    for i in range(batch):
        for j in range(batch):
            for k in range(batch):
                if i in (j, k) or not teacher_sim[i, j] > teacher_sim[i, k]:
                    continue
                total += max(0.0, margin - (student_sim[i, j] - student_sim[i, k]))
                count += 1
    return total / max(count, 1)


def t64(x) -> torch.Tensor:
    return torch.tensor(np.asarray(x), dtype=torch.float64)


def leaves(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [t64(a).requires_grad_() for a in arrays]


def st_losses():
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import losses
    return losses


@pytest.fixture(scope="module")
def model(bi_encoder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bi_encoder), device="cpu")
    model.eval()  # no dropout: parity checks compare two forward passes
    return model


def features_of(model, texts: list[str]) -> dict[str, torch.Tensor]:
    """One column's feature dict (``preprocess`` in sentence-transformers 6, ``tokenize`` before)."""
    return (model.preprocess if hasattr(model, "preprocess") else model.tokenize)(texts)


def assert_params_got_gradients(model) -> None:
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad(set_to_none=True)


# ----------------------------------------------------------------------------- InfoNCELoss


def test_info_nce_hand_computed():
    # Candidates of the batch: p0, p1, n0, n1. Query 0's softmax includes query 1's positive p1.
    q = [[1.0, 0.0], [0.0, 1.0]]
    p = [[1.0, 0.0], [1.0, 1.0]]
    n = [[0.0, 1.0], [-1.0, 0.0]]
    r = 1 / math.sqrt(2)
    t = 0.5
    # cos(q0, .) = [1, r, 0, -1]; cos(q1, .) = [0, r, 1, 0]
    loss0 = -math.log(math.exp(1 / t) / (math.exp(1 / t) + math.exp(r / t) + 1 + math.exp(-1 / t)))
    loss1 = -math.log(math.exp(r / t) / (1 + math.exp(r / t) + math.exp(1 / t) + 1))
    loss = InfoNCELoss(None, temperature=t).compute_loss_from_embeddings([t64(q), t64(p), t64(n)])
    assert loss.item() == pytest.approx((loss0 + loss1) / 2, rel=1e-12)


@pytest.mark.parametrize("num_negatives", [0, 1, 3])
def test_info_nce_matches_numpy_and_sentence_transformers_mnrl(num_negatives):
    rng = np.random.default_rng(num_negatives)
    arrays = [rng.normal(size=(6, 16)) for _ in range(2 + num_negatives)]
    ours_in, st_in = leaves(*arrays), leaves(*arrays)
    ours = InfoNCELoss(None, temperature=0.02).compute_loss_from_embeddings(ours_in, None)
    mnrl = st_losses().MultipleNegativesRankingLoss(None, scale=1 / 0.02)
    theirs = mnrl.compute_loss_from_embeddings(st_in, None)
    assert ours.item() == pytest.approx(np_info_nce(arrays[0], arrays[1:], 0.02), rel=1e-10)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-10)
    ours.backward()
    theirs.backward()
    for a, b in zip(ours_in, st_in):
        assert a.grad.abs().sum() > 0
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_info_nce_defaults_and_config():
    loss = InfoNCELoss(None)
    assert loss.temperature == 0.02 and loss.scale == pytest.approx(50.0)
    assert loss.get_config_dict() == {"temperature": 0.02, "gather_across_devices": False}
    assert "1807.03748" in loss.citation


@pytest.mark.parametrize("temperature", [0, -0.1, "0.05", None])
def test_info_nce_rejects_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(None, temperature=temperature)


def test_info_nce_rejects_bad_columns():
    loss = InfoNCELoss(None)
    with pytest.raises(ValueError, match="at least 2"):
        loss.compute_loss_from_embeddings([torch.randn(3, 4)])
    with pytest.raises(ValueError, match=r"embeddings\[1\] has shape \(2, 4\)"):
        loss.compute_loss_from_embeddings([torch.randn(3, 4), torch.randn(2, 4)])
    with pytest.raises(ValueError, match=r"\(batch, dim\) tensor"):
        loss.compute_loss_from_embeddings([torch.randn(3, 4), torch.randn(3, 2, 4)])


def test_info_nce_without_process_group_gathers_nothing():
    rng = np.random.default_rng(7)
    arrays = [rng.normal(size=(4, 8)) for _ in range(3)]
    gathered = InfoNCELoss(None, gather_across_devices=True).compute_loss_from_embeddings(leaves(*arrays))
    assert gathered.item() == pytest.approx(np_info_nce(arrays[0], arrays[1:], 0.02), rel=1e-10)


def test_info_nce_forward_on_a_real_model(model):
    features = [features_of(model, QUERIES), features_of(model, POSITIVES), features_of(model, NEGATIVES)]
    loss = InfoNCELoss(model)(features, None)
    assert loss.ndim == 0 and torch.isfinite(loss)
    with torch.no_grad():
        q, p, n = (model.encode(x, convert_to_numpy=True) for x in (QUERIES, POSITIVES, NEGATIVES))
    assert loss.item() == pytest.approx(np_info_nce(q, [p, n], 0.02), rel=1e-4)
    loss.backward()
    assert_params_got_gradients(model)


# -- gather_across_devices: 2 CPU processes (gloo) against the single-process loss on the whole batch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gather_worker(rank: int, world_size: int, port: int) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # do not depend on the hostname resolving
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=60))
    try:
        # Equal shards (3 + 3 rows), then an uneven last batch (3 + 2 rows).
        for sizes in ([3, 3], [3, 2]):
            generator = torch.Generator().manual_seed(sum(sizes))
            columns = [torch.randn(sum(sizes), 8, generator=generator, dtype=torch.float64) for _ in range(3)]
            start, stop = sum(sizes[:rank]), sum(sizes[: rank + 1])
            local = [c[start:stop].clone().requires_grad_() for c in columns]
            loss = InfoNCELoss(None, temperature=0.1, gather_across_devices=True).compute_loss_from_embeddings(local)

            # Single process, whole batch: per-query cross-entropy over all candidates.
            full = [c.clone().requires_grad_() for c in columns]
            scores = F.normalize(full[0], dim=-1) @ F.normalize(torch.cat(full[1:]), dim=-1).T / 0.1
            per_query = -torch.log_softmax(scores, dim=-1).diagonal()
            shard_losses = [per_query[sum(sizes[:r]) : sum(sizes[: r + 1])].mean() for r in range(world_size)]
            torch.testing.assert_close(loss, shard_losses[rank], rtol=1e-10, atol=1e-12)

            # Every rank's local rows receive the gradient of the sum of all ranks' losses; DDP's
            # average over ranks then makes the update the gradient of the global-batch loss.
            loss.backward()
            sum(shard_losses).backward()
            for mine, reference in zip(local, full):
                assert mine.grad.abs().sum() > 0
                torch.testing.assert_close(mine.grad, reference.grad[start:stop], rtol=1e-9, atol=1e-12)
    finally:
        dist.destroy_process_group()


def test_info_nce_gather_across_two_processes_equals_single_process():
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(2, _free_port()), nprocs=2, join=True)


# ----------------------------------------------------------------------------- MatryoshkaLoss


def test_matryoshka_is_the_weighted_sum_over_truncated_renormalized_embeddings():
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=(5, 12)) for _ in range(3)]
    dims, weights = [4, 12, 8], [0.5, 1.0, 2.0]
    loss = MatryoshkaLoss(None, InfoNCELoss(None, temperature=0.05), dims, weights)
    assert loss.matryoshka_dims == [12, 8, 4] and loss.matryoshka_weights == [1.0, 2.0, 0.5]
    expected = sum(
        w * np_info_nce(np_normalize(arrays[0][:, :d]), [np_normalize(a[:, :d]) for a in arrays[1:]], 0.05)
        for d, w in zip(dims, weights)
    )
    inputs = leaves(*arrays)
    value = loss.compute_loss_from_embeddings(inputs, None)
    assert value.item() == pytest.approx(expected, rel=1e-10)
    value.backward()
    assert all(x.grad.abs().sum() > 0 for x in inputs)


def test_matryoshka_equals_sentence_transformers_matryoshka_mnrl(model):
    losses = st_losses()
    dims, weights = [32, 16, 8], [1.0, 0.5, 0.25]
    features = [features_of(model, QUERIES), features_of(model, POSITIVES), features_of(model, NEGATIVES)]
    ours = MatryoshkaLoss(model, InfoNCELoss(model, temperature=0.05), dims, weights)(features, None)
    mnrl = losses.MultipleNegativesRankingLoss(model, scale=20.0)
    theirs = losses.MatryoshkaLoss(model, mnrl, dims, weights)(features, None)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    # Our wrapper also takes sentence-transformers' MNRL as its base.
    with_st_base = MatryoshkaLoss(model, mnrl, dims, weights)(features, None)
    assert with_st_base.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_matryoshka_forward_encodes_once(model, monkeypatch):
    calls = []
    original = model.forward

    def counting_forward(features, *args, **kwargs):
        calls.append(1)
        return original(features, *args, **kwargs)

    monkeypatch.setattr(model, "forward", counting_forward)
    features = [features_of(model, QUERIES), features_of(model, POSITIVES)]
    loss = MatryoshkaLoss(model, InfoNCELoss(model), [32, 16, 8, 4])(features, None)
    assert len(calls) == 2  # one forward per column, not one per column per dim
    loss.backward()
    assert_params_got_gradients(model)


def test_matryoshka_validates_dims_and_weights(model):
    base = InfoNCELoss(model)
    with pytest.raises(ValueError, match="64"):
        MatryoshkaLoss(model, base, [64, 32])
    for bad in ([], [16, 0], [16, -8], [16.5], [True], "32"):
        with pytest.raises(ValueError, match="matryoshka_dims"):
            MatryoshkaLoss(model, base, bad)
    with pytest.raises(ValueError, match="distinct"):
        MatryoshkaLoss(model, base, [16, 16])
    with pytest.raises(ValueError, match="2 values but matryoshka_dims has 3"):
        MatryoshkaLoss(model, base, [32, 16, 8], [1.0, 1.0])
    with pytest.raises(ValueError, match="matryoshka_weights"):
        MatryoshkaLoss(model, base, [32, 16], [1.0, -1.0])
    with pytest.raises(TypeError, match="compute_loss_from_embeddings"):
        MatryoshkaLoss(model, torch.nn.MSELoss(), [32])
    # A model that does not know its dim: checked on the first batch instead.
    with pytest.raises(ValueError, match="matryoshka dim 64"):
        MatryoshkaLoss(None, InfoNCELoss(None), [64]).compute_loss_from_embeddings([torch.randn(2, 8)] * 2)


def test_matryoshka_config():
    loss = MatryoshkaLoss(None, InfoNCELoss(None), [8, 16])
    assert loss.get_config_dict() == {
        "loss": "InfoNCELoss",
        "matryoshka_dims": [16, 8],
        "matryoshka_weights": [1.0, 1.0],
    }
    assert "2205.13147" in loss.citation


def test_matryoshka_over_distillation_keeps_cosine_at_the_full_dim_only():
    rng = np.random.default_rng(5)
    student, teacher = rng.normal(size=(6, 12)), rng.normal(size=(6, 12))
    base = EmbeddingDistillationLoss(None, cosine_weight=10, similarity_weight=200, margin_weight=20)
    loss = MatryoshkaLoss(None, base, [12, 6], [1.0, 0.5])
    t_hat = np_normalize(teacher)
    t_sim = t_hat @ t_hat.T

    def terms(dim: int) -> tuple[float, float, float]:
        s_hat = np_normalize(student[:, :dim])
        s_sim = s_hat @ s_hat.T
        cosine = float(np.mean(1 - np.sum(s_hat * t_hat, axis=1))) if dim == 12 else 0.0
        return cosine, float(np.mean((s_sim - t_sim) ** 2)), np_margin(s_sim, t_sim, 0.015)

    expected = 0.0
    for dim, weight in ((12, 1.0), (6, 0.5)):
        cosine, similarity, margin = terms(dim)
        expected += weight * (10 * cosine + 200 * similarity + 20 * margin)
    value = loss.compute_loss_from_embeddings([t64(student)], t64(teacher))
    assert value.item() == pytest.approx(expected, rel=1e-10)


# ----------------------------------------------------------------------------- PreferenceKLLoss


def test_preference_kl_hand_computed_two_queries_three_docs():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    docs = [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [-1.0, 1.0]])]
    teacher = [[2.0, 1.0, 0.0], [0.5, -1.0, 0.0]]
    temperature, teacher_temperature = 0.5, 2.0
    r = 1 / math.sqrt(2)
    cos = [[1.0, r, 0.0], [1.0, 0.0, r]]  # query i against its own doc_1..doc_3
    expected = 0.0
    for i in range(2):
        zp = sum(math.exp(y / teacher_temperature) for y in teacher[i])
        zq = sum(math.exp(c / temperature) for c in cos[i])
        for j in range(3):
            p = math.exp(teacher[i][j] / teacher_temperature) / zp
            qq = math.exp(cos[i][j] / temperature) / zq
            expected += p * math.log(p / qq)
    expected /= 2
    loss = PreferenceKLLoss(None, temperature=temperature, teacher_temperature=teacher_temperature)
    inputs = leaves(q, *docs)
    value = loss.compute_loss_from_embeddings(inputs, t64(teacher))
    assert value.item() == pytest.approx(expected, rel=1e-12)
    value.backward()
    # doc_1 lies along each query (cos = 1, a maximum), so its gradient is 0; the others move.
    assert [bool(x.grad.abs().sum() > 0) for x in inputs] == [True, False, True, True]


def test_preference_kl_is_per_query_so_batch_order_does_not_matter():
    rng = np.random.default_rng(11)
    q, docs, teacher = rng.normal(size=(5, 8)), [rng.normal(size=(5, 8)) for _ in range(4)], rng.normal(size=(5, 4))
    loss = PreferenceKLLoss(None)
    value = loss.compute_loss_from_embeddings([t64(q)] + [t64(d) for d in docs], t64(teacher))
    rows = rng.permutation(5)
    shuffled = loss.compute_loss_from_embeddings([t64(q[rows])] + [t64(d[rows]) for d in docs], t64(teacher[rows]))
    assert shuffled.item() == pytest.approx(value.item(), rel=1e-12)
    cols = rng.permutation(4)  # reordering a query's documents together with their scores
    reordered = loss.compute_loss_from_embeddings([t64(q)] + [t64(docs[c]) for c in cols], t64(teacher[:, cols]))
    assert reordered.item() == pytest.approx(value.item(), rel=1e-12)


def test_preference_kl_is_zero_when_student_matches_teacher():
    rng = np.random.default_rng(2)
    q, docs = rng.normal(size=(3, 6)), [rng.normal(size=(3, 6)) for _ in range(5)]
    cos = np.stack([np.sum(np_normalize(q) * np_normalize(d), axis=1) for d in docs], axis=1)
    # softmax(y / 2.0) == softmax(cos / 0.05) when y = cos / 0.05 * 2.0 (plus any per-query constant)
    teacher = cos / 0.05 * 2.0 + rng.normal(size=(3, 1))
    loss = PreferenceKLLoss(None, temperature=0.05, teacher_temperature=2.0)
    value = loss.compute_loss_from_embeddings([t64(q)] + [t64(d) for d in docs], t64(teacher))
    assert abs(value.item()) < 1e-12
    assert value.item() > -1e-12


def test_preference_kl_validates_labels_and_temperatures():
    loss = PreferenceKLLoss(None)
    embeddings = [torch.randn(2, 4) for _ in range(4)]  # 2 queries x 3 docs
    with pytest.raises(ValueError, match="labels=None"):
        loss.compute_loss_from_embeddings(embeddings, None)
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*expected \(2, 3\)"):
        loss.compute_loss_from_embeddings(embeddings, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        loss.compute_loss_from_embeddings(embeddings, torch.zeros(6))
    with pytest.raises(ValueError, match="at least 2"):
        loss.compute_loss_from_embeddings(embeddings[:1], torch.zeros(2, 0))
    for kwargs in ({"temperature": 0}, {"teacher_temperature": -1.0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            PreferenceKLLoss(None, **kwargs)
    assert loss.get_config_dict() == {"temperature": 0.05, "teacher_temperature": 1.0}
    assert "2301.12652" in loss.citation


def test_preference_kl_forward_on_a_real_model(model):
    features = [features_of(model, QUERIES), features_of(model, POSITIVES), features_of(model, NEGATIVES)]
    labels = torch.tensor([[1.0, -1.0], [0.5, 0.0], [2.0, -2.0], [0.0, 0.1]])
    loss = PreferenceKLLoss(model)(features, labels)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() >= 0
    loss.backward()
    assert_params_got_gradients(model)


# ----------------------------------------------------------------------------- EmbeddingDistillationLoss


def test_distillation_hand_computed():
    rng = np.random.default_rng(4)
    student, teacher = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    s_hat, t_hat = np_normalize(student), np_normalize(teacher)
    cosine = np.mean([1 - sum(s_hat[i, d] * t_hat[i, d] for d in range(3)) for i in range(4)])
    s_sim, t_sim = s_hat @ s_hat.T, t_hat @ t_hat.T
    similarity = sum((s_sim[i, j] - t_sim[i, j]) ** 2 for i in range(4) for j in range(4)) / 16
    margin = np_margin(s_sim, t_sim, 0.1)
    loss = EmbeddingDistillationLoss(None, cosine_weight=2.0, similarity_weight=3.0, margin_weight=5.0, margin=0.1)
    inputs = leaves(student)
    components = loss.compute_loss_components(inputs, t64(teacher))
    assert components["cosine"].item() == pytest.approx(2.0 * cosine, rel=1e-12)
    assert components["similarity"].item() == pytest.approx(3.0 * similarity, rel=1e-12)
    assert components["margin"].item() == pytest.approx(5.0 * margin, rel=1e-12)
    value = loss.compute_loss_from_embeddings(inputs, t64(teacher))
    assert value.item() == pytest.approx(2 * cosine + 3 * similarity + 5 * margin, rel=1e-12)
    value.backward()
    assert inputs[0].grad.abs().sum() > 0


@pytest.mark.parametrize("chunk_size", [None, 1, 5, 12])
def test_distillation_margin_equals_naive_cubic_reference(chunk_size):
    from rag_retrieval_train.losses import relative_similarity_margin_loss

    rng = np.random.default_rng(12)
    student, teacher = rng.normal(size=(12, 6)), rng.normal(size=(12, 6))
    teacher[3] = teacher[5]  # ties in the teacher's ranking order nothing
    t_sim = np_normalize(teacher) @ np_normalize(teacher).T
    s_hat = np_normalize(student)
    expected = np_margin(s_hat @ s_hat.T, t_sim, 0.05)

    ours_in = t64(student).requires_grad_()
    s = F.normalize(ours_in, dim=-1)
    value = relative_similarity_margin_loss(s @ s.T, t64(t_sim), 0.05, chunk_size)
    assert value.item() == pytest.approx(expected, rel=1e-12)

    # Gradient against plain autograd through the brute-force (B^3) formula.
    naive_in = t64(student).requires_grad_()
    s = F.normalize(naive_in, dim=-1)
    s_sim = s @ s.T
    terms = [
        torch.relu(0.05 - (s_sim[i, j] - s_sim[i, k]))
        for i in range(12)
        for j in range(12)
        for k in range(12)
        if i not in (j, k) and t_sim[i, j] > t_sim[i, k]
    ]
    naive = torch.stack(terms).mean()
    value.backward()
    naive.backward()
    assert ours_in.grad.abs().sum() > 0
    torch.testing.assert_close(ours_in.grad, naive_in.grad, rtol=1e-9, atol=1e-12)


def test_distillation_margin_keeps_memory_quadratic_at_batch_512():
    # Time is O(B^3) but memory O(B^2): the autograd node keeps one (B, B) gradient, and each
    # chunk's temporaries are (chunk, B, B) with chunk * B * B ~ 4M (by construction, see
    # _RelativeSimilarityMargin). A naive version would save B^3 = 134M hinge entries here.
    batch = 512
    student = torch.randn(batch, 64, requires_grad=True)
    teacher = torch.randn(batch, 64)
    loss = EmbeddingDistillationLoss(None).compute_loss_components([student], teacher)["margin"]
    node = loss.grad_fn
    while node is not None and not node.name().startswith("_RelativeSimilarityMargin"):
        node = node.next_functions[0][0]
    assert node is not None
    assert all(saved.numel() <= batch * batch for saved in node.saved_tensors)
    loss.backward()
    assert student.grad.abs().sum() > 0


def test_distillation_no_ordered_triples_gives_zero():
    from rag_retrieval_train.losses import relative_similarity_margin_loss

    sim = torch.eye(2, requires_grad=True)
    value = relative_similarity_margin_loss(sim, torch.eye(2), 0.1)
    value.backward()
    assert value.item() == 0 and sim.grad.abs().sum() == 0


def test_distillation_validates_inputs():
    loss = EmbeddingDistillationLoss(None)
    with pytest.raises(
        ValueError, match="student embedding dim 8 != teacher dim 16.*Dense\\(8, 16, activation_function"
    ):
        loss.compute_loss_from_embeddings([torch.randn(4, 8)], torch.randn(4, 16))
    with pytest.raises(ValueError, match="labels=None"):
        loss.compute_loss_from_embeddings([torch.randn(4, 8)], None)
    with pytest.raises(ValueError, match="3 teacher vectors for a batch of 4"):
        loss.compute_loss_from_embeddings([torch.randn(4, 8)], torch.randn(3, 8))
    with pytest.raises(ValueError, match="one column"):
        loss.compute_loss_from_embeddings([torch.randn(4, 8)] * 2, torch.randn(4, 8))
    with pytest.raises(ValueError, match="at least one of the three weights"):
        EmbeddingDistillationLoss(None, cosine_weight=0, similarity_weight=0, margin_weight=0)
    for kwargs in ({"cosine_weight": -1}, {"margin": 0}, {"margin_chunk_size": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            EmbeddingDistillationLoss(None, **kwargs)
    # Without the cosine term only (B, B) matrices are compared, so the dims may differ.
    no_cosine = EmbeddingDistillationLoss(None, cosine_weight=0)
    assert torch.isfinite(no_cosine.compute_loss_from_embeddings([torch.randn(4, 8)], torch.randn(4, 16)))


def test_distillation_defaults_and_config():
    loss = EmbeddingDistillationLoss(None)
    assert loss.get_config_dict() == {
        "cosine_weight": 10.0,
        "similarity_weight": 200.0,
        "margin_weight": 20.0,
        "margin": 0.015,
    }
    assert "2412.19048" in loss.citation


def test_distillation_forward_on_a_real_model(model):
    features = [features_of(model, QUERIES + POSITIVES)]
    teacher = torch.randn(8, model.get_embedding_dimension(), generator=torch.Generator().manual_seed(0))
    loss = EmbeddingDistillationLoss(model)(features, teacher)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert_params_got_gradients(model)


def test_matryoshka_forward_on_a_real_model_with_distillation(model):
    features = [features_of(model, QUERIES + POSITIVES)]
    teacher = torch.randn(8, 32, generator=torch.Generator().manual_seed(1))
    loss = MatryoshkaLoss(model, EmbeddingDistillationLoss(model), [32, 16])(features, teacher)
    assert torch.isfinite(loss)
    loss.backward()
    assert_params_got_gradients(model)


# ----------------------------------------------------------------------------- SentenceTransformerTrainer


@pytest.mark.parametrize("kind", ["info_nce", "matryoshka", "preference_kl", "distillation"])
def test_losses_train_a_step_in_sentence_transformer_trainer(bi_encoder, tmp_path, kind):
    datasets = pytest.importorskip("datasets")
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args

    model = SentenceTransformer(str(bi_encoder), device="cpu")
    columns, loss = {
        "info_nce": ({"query": QUERIES, "positive": POSITIVES, "negative_1": NEGATIVES}, InfoNCELoss(model)),
        "matryoshka": ({"query": QUERIES, "positive": POSITIVES}, MatryoshkaLoss(model, InfoNCELoss(model), [32, 8])),
        "preference_kl": (
            {"query": QUERIES, "doc_1": POSITIVES, "doc_2": NEGATIVES, "label": [[0.0, -2.0]] * 4},
            PreferenceKLLoss(model),
        ),
        "distillation": (
            {"text": QUERIES, "label": np.random.default_rng(0).normal(size=(4, 32)).tolist()},
            EmbeddingDistillationLoss(model),
        ),
    }[kind]
    before = [p.detach().clone() for p in model.parameters()]
    args = Args(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=1, report_to=[], use_cpu=True)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_dict(columns), loss=loss
    )
    assert math.isfinite(trainer.train().training_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
