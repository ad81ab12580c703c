"""Pooling over a `pooling_mask`, written with export-friendly tensor ops (no data-dependent Python)."""
from __future__ import annotations

import torch

POOLING_MODES = ("mean", "weighted_mean", "last_token", "eos_token", "bos_token")


def check_pooling(mode: str) -> str:
    from l2v.errors import InputError

    if mode not in POOLING_MODES:
        raise InputError(f"unknown pooling {mode!r}", hint=f"choose one of {', '.join(POOLING_MODES)}")
    return mode


def _gather(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    idx = index.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])
    return hidden.gather(1, idx).squeeze(1)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """hidden `[B, S, H]`, masks `[B, S]` -> `[B, H]`. An empty pooling span gives a zero vector."""
    m = pooling_mask.to(hidden.dtype)
    if mode == "mean":
        return (hidden * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp(min=1.0)
    if mode == "weighted_mean":  # SGPT position weights 1..n over the pooled span
        w = m.cumsum(1) * m
        return (hidden * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp(min=1.0)
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    if mode in ("last_token", "eos_token"):
        last = (pooling_mask.long() * (positions + 1)).argmax(1)
        return _gather(hidden, last) * (m.sum(1, keepdim=True) > 0).to(hidden.dtype)
    if mode == "bos_token":
        first = (attention_mask.long() * (hidden.shape[1] - positions)).argmax(1)
        return _gather(hidden, first)
    raise ValueError(f"unknown pooling {mode!r}")


def normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)
