"""Pooling over packed sequences (`cu_seqlens`) with a flat `pooling_mask`.

Same semantics as `l2v.model.pooling.pool` on padded batches: `mean`; `weighted_mean` (weights
1..n over the pooled tokens of each sequence); `last_token` / `eos_token` (last token whose
pooling_mask is 1, zero vector if none); `bos_token` (first token of the sequence). An empty
sequence pools to a zero vector.
"""
from __future__ import annotations

import torch

from l2v.engine.packing import seq_index
from l2v.model.pooling import POOLING_MODES, check_pooling  # one list of modes for every backend

__all__ = ["packed_pool", "check_pooling", "POOLING_MODES"]


def packed_pool(hidden: torch.Tensor, cu_seqlens: torch.Tensor, pooling_mask: torch.Tensor, mode: str,
                n_seqs: int | None = None) -> torch.Tensor:
    """hidden `[T, H]`, cu_seqlens `[B+1]`, pooling_mask `[T]` -> `[B, H]` (first `n_seqs` sequences)."""
    check_pooling(mode)
    total, width = hidden.shape
    batch = cu_seqlens.numel() - 1 if n_seqs is None else n_seqs
    idx = seq_index(cu_seqlens, total)
    m = pooling_mask.to(hidden.dtype)
    out = hidden.new_zeros(cu_seqlens.numel() - 1, width)
    if mode in ("mean", "weighted_mean"):
        if mode == "weighted_mean":  # rank of each pooled token inside its sequence: 1..n
            csum = m.cumsum(0)
            before = torch.cat([csum.new_zeros(1), csum])[cu_seqlens[:-1].long()]
            m = (csum - before[idx]) * m
        out.index_add_(0, idx, hidden * m[:, None])
        denom = hidden.new_zeros(out.shape[0]).index_add_(0, idx, m)
        return (out / denom.clamp(min=1.0)[:, None])[:batch]
    if mode in ("last_token", "eos_token"):
        pos = torch.arange(total, device=hidden.device)
        score = torch.where(pooling_mask.bool(), pos, torch.full_like(pos, -1))
        last = torch.full((out.shape[0],), -1, dtype=torch.long, device=hidden.device)
        last = last.scatter_reduce(0, idx, score, reduce="amax")
        has = last >= 0
        out[has] = hidden[last[has]]
        return out[:batch]
    if mode == "bos_token":
        starts = cu_seqlens[:-1].long()
        has = cu_seqlens[1:] > cu_seqlens[:-1]
        out[has] = hidden[starts[has]]
        return out[:batch]
    raise ValueError(f"unknown pooling {mode!r}")  # pragma: no cover (check_pooling raised first)
