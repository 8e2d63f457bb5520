"""Length-sorted batching: every input exactly once, longest first, little padding."""

from __future__ import annotations

import numpy as np
import pytest

from rag_retrieval_integrations.core.pair_encoding import EncodedPairs, length_sorted_batches, plan_batches


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


def test_padded_batches_hold_the_right_tokens():
    ids = [[5, 6, 7], [8], [9, 10]]
    encoded = EncodedPairs(ids, [[0, 0, 1], [0], [0, 1]], np.arange(3), 3)
    seen = []
    for rows, batch in length_sorted_batches(encoded, 8, pad_token_id=0):
        for j, row in enumerate(rows):
            n = len(ids[row])
            assert batch["input_ids"][j, :n].tolist() == ids[row]
            assert batch["token_type_ids"][j, :n].tolist() == encoded.token_type_ids[row]
            assert batch["attention_mask"][j].sum().item() == n
            assert batch["input_ids"][j, n:].tolist() == [0] * (batch["input_ids"].shape[1] - n)
            seen.append(int(row))
    assert sorted(seen) == [0, 1, 2]


def test_left_padding_puts_tokens_at_the_end():
    ids = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [8, 9, 10, 11, 12, 13, 14, 15, 16]]
    encoded = EncodedPairs(ids, None, np.arange(2), 2)
    rows, batch = next(length_sorted_batches(encoded, 8, pad_token_id=0, padding_side="left"))
    assert rows.tolist() == [0, 1] and "token_type_ids" not in batch
    assert batch["input_ids"][1].tolist() == [0] + ids[1]
    assert batch["attention_mask"][1].tolist() == [0] + [1] * 9
