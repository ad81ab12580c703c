"""Packing helpers and packed pooling vs the padded `l2v.model.pooling.pool`."""
from __future__ import annotations

import pytest
import torch

from l2v.engine.packing import length_sorted_batches, pack_sequences, pad_to_bucket, positions
from l2v.engine.pooling import POOLING_MODES, packed_pool
from l2v.errors import InputError
from l2v.model.pooling import pool


def test_pack_and_positions():
    flat, cu, longest = pack_sequences([[5, 6, 7], [], [8], [1, 2]])
    assert flat.tolist() == [5, 6, 7, 8, 1, 2] and cu.dtype == torch.int32
    assert cu.tolist() == [0, 3, 3, 4, 6] and longest == 3
    assert positions(cu, 6).tolist() == [0, 1, 2, 0, 0, 1]
    with pytest.raises(InputError):
        pack_sequences(torch.zeros(3))


def test_pad_to_bucket():
    flat, cu, _ = pack_sequences([[1, 2, 3], [4]])
    ids, cu2, longest, n_real = pad_to_bucket(flat, cu, 3, 8, pad_id=0)
    assert ids.numel() == 8 and cu2.tolist() == [0, 3, 4, 8] and longest == 4 and n_real == 2
    ids, cu3, _, _ = pad_to_bucket(flat, cu, 3, 4)
    assert cu3.tolist() == cu.tolist()


def test_length_sorted_batches():
    lens = [5, 100, 3, 40, 40, 1, 7, 300]
    batches = length_sorted_batches(lens, max_batch_tokens=100, max_batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lens)))
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or sum(lens[i] for i in b) <= 100
    assert batches[0] == [7]  # longest first, alone when over budget
    with pytest.raises(InputError):
        length_sorted_batches(lens, 0)


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_packed_pool_matches_padded_pool(mode):
    g = torch.Generator().manual_seed(0)
    lens = [4, 1, 6, 3]
    pmasks = [torch.tensor(m) for m in ([0, 1, 1, 0], [1], [0, 0, 1, 1, 1, 1], [0, 0, 0])]
    hidden = [torch.randn(n, 8, generator=g) for n in lens]
    cu = torch.tensor([0, 4, 5, 11, 14], dtype=torch.int32)
    got = packed_pool(torch.cat(hidden), cu, torch.cat(pmasks), mode)
    s = max(lens)
    hp, am, pm = torch.zeros(4, s, 8), torch.zeros(4, s, dtype=torch.long), torch.zeros(4, s, dtype=torch.long)
    for i, (h, m) in enumerate(zip(hidden, pmasks)):
        hp[i, s - len(h):], am[i, s - len(h):], pm[i, s - len(h):] = h, 1, m  # left padding
    torch.testing.assert_close(got, pool(hp, am, pm, mode))


def test_packed_pool_empty_sequence_is_zero():
    cu = torch.tensor([0, 2, 2], dtype=torch.int32)
    for mode in POOLING_MODES:
        out = packed_pool(torch.ones(2, 4), cu, torch.ones(2), mode)
        assert out[1].abs().sum() == 0 and out[0].abs().sum() > 0
