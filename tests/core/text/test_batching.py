"""Length-sorted batching: every input exactly once, longest first, little padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rag_retrieval_integrations.core.text.batching import pad_batch, plan_batches, score_in_batches
from rag_retrieval_integrations.core.text.pair_encoding import EncodedPairs


@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_plan_covers_every_input_once_longest_first(batch_size):
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(10, 60, 300), rng.integers(100, 512, 60)])
    batches = plan_batches(lengths, batch_size)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    widths = [lengths[b].max() for b in batches]
    assert widths == sorted(widths, reverse=True)
    assert widths[0] == lengths.max()
    for b in batches:  # no row padded by more than 10% of its batch's width
        assert lengths[b].min() >= 0.9 * lengths[b].max()


def test_uniform_lengths_fill_whole_batches():
    assert [len(b) for b in plan_batches(np.full(70, 40), 32)] == [32, 32, 6]


def test_token_budget_limits_padded_batch_size():
    lengths = np.array([500, 400, 100, 100, 100, 100, 100, 100, 20, 20])
    batches = plan_batches(lengths, batch_size=32, max_batch_tokens=400, max_padding=1.0)
    assert all(len(b) * lengths[b].max() <= 400 or len(b) == 1 for b in batches)
    assert [len(b) for b in batches] == [1, 1, 4, 4]


def test_padded_batches_hold_the_right_tokens():
    ids = [[5, 6, 7], [8], [9, 10]]
    encoded = EncodedPairs(ids, [[0, 0, 1], [0], [0, 1]], np.arange(3), 3)
    rows = np.array([0, 1, 2])
    batch = pad_batch(encoded, rows, pad_token_id=0)
    for j, row in enumerate(rows):
        n = len(ids[row])
        assert batch["input_ids"][j, :n].tolist() == ids[row]
        assert batch["token_type_ids"][j, :n].tolist() == encoded.token_type_ids[row]
        assert batch["attention_mask"][j].sum().item() == n
        assert batch["input_ids"][j, n:].tolist() == [0] * (3 - n)


def test_left_padding_puts_tokens_at_the_end():
    ids = [[5, 6, 7, 8], [8, 9]]
    batch = pad_batch(EncodedPairs(ids, None, np.arange(2), 2), np.array([0, 1]), 0, padding_side="left")
    assert "token_type_ids" not in batch
    assert batch["input_ids"][1].tolist() == [0, 0, 8, 9]
    assert batch["attention_mask"][1].tolist() == [0, 0, 1, 1]


def test_scores_land_at_their_inputs_and_rows_of_scores_are_kept():
    ids = [[1] * n for n in (3, 9, 1, 5)]
    encoded = EncodedPairs(ids, None, np.arange(4), 4)
    lengths = lambda b: b["attention_mask"].sum(1).float()
    out = score_in_batches(encoded, lengths, batch_size=2, pad_token_id=0, device=torch.device("cpu"))
    assert out.tolist() == [3, 9, 1, 5]
    two = score_in_batches(
        encoded,
        lambda b: torch.stack([lengths(b), -lengths(b)], 1),
        batch_size=3,
        pad_token_id=0,
        device=torch.device("cpu"),
    )
    assert two.tolist() == [[3, -3], [9, -9], [1, -1], [5, -5]]


def test_out_of_memory_halves_the_batch_and_retries(caplog):
    ids = [[1] * 10 for _ in range(8)]
    encoded = EncodedPairs(ids, None, np.arange(8), 8)
    seen = []

    def flaky(batch):
        seen.append(len(batch["input_ids"]))
        if len(batch["input_ids"]) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return batch["input_ids"].sum(1).float()

    out = score_in_batches(encoded, flaky, batch_size=8, pad_token_id=0, device=torch.device("cpu"))
    assert out.tolist() == [10.0] * 8
    assert seen[:3] == [8, 4, 2] and sorted(seen[2:]) == [2, 2, 2, 2, 4]
    assert "out of memory" in caplog.text

    def always(batch):
        raise torch.OutOfMemoryError("simulated")

    with pytest.raises(torch.OutOfMemoryError):
        score_in_batches(encoded, always, batch_size=8, pad_token_id=0, device=torch.device("cpu"))
