"""Packing token sequences without padding: `cu_seqlens`, per-sequence positions, token budgets."""
from __future__ import annotations

from typing import Sequence

import torch

from l2v.errors import InputError
from l2v.text.batching import length_sorted_batches  # noqa: F401  (re-exported)


def pack_sequences(seqs: Sequence, device=None, dtype=torch.long):
    """List of 1-D id sequences (lists or tensors) -> (flat `[T]`, cu_seqlens int32 `[B+1]`, max_seqlen)."""
    if isinstance(seqs, torch.Tensor) or not isinstance(seqs, (list, tuple)):
        raise InputError(f"expected a list of token-id sequences, got {type(seqs).__name__}")
    parts = [torch.as_tensor(s, dtype=dtype).reshape(-1) for s in seqs]
    lens = [int(p.numel()) for p in parts]
    flat = torch.cat(parts) if parts else torch.zeros(0, dtype=dtype)
    cu = torch.zeros(len(lens) + 1, dtype=torch.int32)
    if lens:
        cu[1:] = torch.tensor(lens, dtype=torch.int64).cumsum(0).to(torch.int32)
    return flat.to(device), cu.to(device), max(lens, default=0)


def seq_lengths(cu_seqlens: torch.Tensor) -> torch.Tensor:
    return (cu_seqlens[1:] - cu_seqlens[:-1]).long()


def seq_index(cu_seqlens: torch.Tensor, total: int) -> torch.Tensor:
    """`[T]` index of the sequence each token belongs to (empty sequences own no tokens)."""
    lens = seq_lengths(cu_seqlens)
    return torch.repeat_interleave(torch.arange(lens.numel(), device=cu_seqlens.device), lens, output_size=total)


def positions(cu_seqlens: torch.Tensor, total: int) -> torch.Tensor:
    """Per-sequence positions 0..L-1 for every packed token, `[T]` int64."""
    idx = seq_index(cu_seqlens, total)
    return torch.arange(total, device=cu_seqlens.device) - cu_seqlens[:-1].long()[idx]


def pad_to_bucket(flat_ids: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int, bucket: int, pad_id: int = 0):
    """Round the token count up to a multiple of `bucket` by appending one dummy sequence of `pad_id`.

    Attention never crosses sequences, so real outputs are unchanged; shapes seen by the dense layers
    come from a small set (what CUDA graphs / torch.compile want). Returns (ids, cu, max_seqlen, n_real).
    """
    total = flat_ids.numel()
    extra = (-total) % bucket
    n_real = cu_seqlens.numel() - 1
    if extra == 0:
        return flat_ids, cu_seqlens, max_seqlen, n_real
    pad = torch.full((extra,), pad_id, dtype=flat_ids.dtype, device=flat_ids.device)
    cu = torch.cat([cu_seqlens, cu_seqlens.new_tensor([total + extra])])
    return torch.cat([flat_ids, pad]), cu, max(max_seqlen, extra), n_real


