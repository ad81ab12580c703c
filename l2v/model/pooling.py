"""Pooling over a `pooling_mask`, written with export-friendly tensor ops (no data-dependent Python).

Modes (the graph contract, docs/DESIGN.md); an empty pooling span gives a zero vector in every mode:
- `mean`, `weighted_mean` (SGPT: weights 1..n over the pooled span), `last_token` / `eos_token` (last
  position whose pooling_mask is 1), `bos_token` (first attended position);
- the sentence-transformers `Pooling` modes not covered above: `first_token` (its `cls`: first pooled
  position), `position_weighted_mean` (its `weightedmean`: weights are the token's position among the real
  tokens, 1 = first real token, so a prompt left out of the span keeps the text's weights where they
  were), `max` (its `max`), `mean_sqrt_len` (its `mean_sqrt_len_tokens`: sum / sqrt(n)).
"""
from __future__ import annotations

import torch

POOLING_MODES = ("mean", "weighted_mean", "last_token", "eos_token", "bos_token",
                 "first_token", "position_weighted_mean", "max", "mean_sqrt_len")


def check_pooling(mode: str) -> str:
    from l2v.errors import InputError

    if mode not in POOLING_MODES:
        raise InputError(f"unknown pooling {mode!r}", hint=f"choose one of {', '.join(POOLING_MODES)}")
    return mode


def _gather(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    idx = index.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])
    return hidden.gather(1, idx).squeeze(1)


def _weighted(hidden: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (hidden * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp(min=1.0)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """hidden `[B, S, H]`, masks `[B, S]` -> `[B, H]`. An empty pooling span gives a zero vector."""
    m = pooling_mask.to(hidden.dtype)
    if mode == "mean":
        return _weighted(hidden, m)
    if mode == "weighted_mean":  # SGPT position weights 1..n over the pooled span
        return _weighted(hidden, m.cumsum(1) * m)
    if mode == "position_weighted_mean":  # weights: position among the real tokens (1 = first)
        return _weighted(hidden, attention_mask.to(hidden.dtype).cumsum(1) * m)
    if mode == "mean_sqrt_len":
        return (hidden * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp(min=1.0).sqrt()
    if mode == "max":
        keep = pooling_mask.bool().unsqueeze(-1)
        low = torch.finfo(hidden.dtype).min
        best = torch.where(keep, hidden, torch.full((), low, dtype=hidden.dtype, device=hidden.device)).amax(1)
        return best * (m.sum(1, keepdim=True) > 0).to(hidden.dtype)
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    if mode in ("last_token", "eos_token"):
        last = (pooling_mask.long() * (positions + 1)).argmax(1)
        return _gather(hidden, last) * (m.sum(1, keepdim=True) > 0).to(hidden.dtype)
    if mode == "first_token":
        first = (pooling_mask.long() * (hidden.shape[1] - positions)).argmax(1)
        return _gather(hidden, first) * (m.sum(1, keepdim=True) > 0).to(hidden.dtype)
    if mode == "bos_token":
        first = (attention_mask.long() * (hidden.shape[1] - positions)).argmax(1)
        return _gather(hidden, first)
    raise ValueError(f"unknown pooling {mode!r}")


def normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)
