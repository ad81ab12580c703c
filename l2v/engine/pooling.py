"""Pooling over packed sequences (`cu_seqlens`) with a flat `pooling_mask`.

Same semantics as `l2v.model.pooling.pool` on padded batches (every mode of `POOLING_MODES`): `mean`;
`weighted_mean` (weights 1..n over the pooled tokens of each sequence); `position_weighted_mean`
(weights: the token's position in its sequence, 1-based); `mean_sqrt_len`; `max`; `last_token` /
`eos_token` / `first_token` (last / first token whose pooling_mask is 1, zero vector if none);
`bos_token` (first token of the sequence). An empty sequence pools to a zero vector.
"""
from __future__ import annotations

import torch

from l2v.engine.packing import positions, seq_index
from l2v.model.pooling import POOLING_MODES, check_pooling  # one list of modes for every backend

__all__ = ["packed_pool", "check_pooling", "POOLING_MODES"]


def _weights(mode: str, m: torch.Tensor, cu_seqlens: torch.Tensor, idx: torch.Tensor, total: int) -> torch.Tensor:
    if mode == "weighted_mean":  # rank of each pooled token inside its sequence: 1..n
        csum = m.cumsum(0)
        before = torch.cat([csum.new_zeros(1), csum])[cu_seqlens[:-1].long()]
        return (csum - before[idx]) * m
    if mode == "position_weighted_mean":
        return (positions(cu_seqlens, total).to(m.dtype) + 1) * m
    return m


def packed_pool(hidden: torch.Tensor, cu_seqlens: torch.Tensor, pooling_mask: torch.Tensor, mode: str,
                n_seqs: int | None = None) -> torch.Tensor:
    """hidden `[T, H]`, cu_seqlens `[B+1]`, pooling_mask `[T]` -> `[B, H]` (first `n_seqs` sequences)."""
    check_pooling(mode)
    total, width = hidden.shape
    batch = cu_seqlens.numel() - 1 if n_seqs is None else n_seqs
    idx = seq_index(cu_seqlens, total)
    m = pooling_mask.to(hidden.dtype)
    out = hidden.new_zeros(cu_seqlens.numel() - 1, width)
    if mode in ("mean", "weighted_mean", "position_weighted_mean", "mean_sqrt_len"):
        w = _weights(mode, m, cu_seqlens, idx, total)
        out.index_add_(0, idx, hidden * w[:, None])
        denom = hidden.new_zeros(out.shape[0]).index_add_(0, idx, w).clamp(min=1.0)
        return (out / (denom.sqrt() if mode == "mean_sqrt_len" else denom)[:, None])[:batch]
    if mode == "max":
        low = torch.full_like(hidden, torch.finfo(hidden.dtype).min)
        vals = torch.where(pooling_mask.bool()[:, None], hidden, low)
        best = torch.full_like(out, torch.finfo(hidden.dtype).min)
        best = best.scatter_reduce(0, idx[:, None].expand(-1, width), vals, reduce="amax")
        has = hidden.new_zeros(out.shape[0]).index_add_(0, idx, m) > 0
        return torch.where(has[:, None], best, out)[:batch]
    if mode in ("last_token", "eos_token", "first_token"):
        pos = torch.arange(total, device=hidden.device)
        first = mode == "first_token"
        fill = total if first else -1
        score = torch.where(pooling_mask.bool(), pos, torch.full_like(pos, fill))
        pick = torch.full((out.shape[0],), fill, dtype=torch.long, device=hidden.device)
        pick = pick.scatter_reduce(0, idx, score, reduce="amin" if first else "amax")
        has = (pick >= 0) & (pick < total)
        out[has] = hidden[pick[has]]
        return out[:batch]
    if mode == "bos_token":
        starts = cu_seqlens[:-1].long()
        has = cu_seqlens[1:] > cu_seqlens[:-1]
        out[has] = hidden[starts[has]]
        return out[:batch]
    raise ValueError(f"unknown pooling {mode!r}")  # pragma: no cover (check_pooling raised first)
