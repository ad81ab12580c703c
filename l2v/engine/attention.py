"""Attention over packed sequences: the PyTorch reference (per-sequence SDPA, any device) and the
dispatch to the Triton kernel (`l2v.kernels.flash_attn`, imported only when asked for)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from l2v.errors import InputError

ATTN_IMPLS = ("torch", "triton")


def varlen_attention_torch(q, k, v, cu_seqlens, max_seqlen=None, causal=False, softmax_scale=None):
    """Reference: one `scaled_dot_product_attention` call per sequence, no padding, in q's dtype.
    q `[T, H, D]`, k/v `[T, H_kv, D]` -> `[T, H, D]`. Slow on many short sequences; CPU-friendly."""
    n_heads, n_kv = q.shape[1], k.shape[1]
    if n_heads % n_kv:
        raise InputError(f"n_heads={n_heads} must be a multiple of n_kv_heads={n_kv}")
    group = n_heads // n_kv
    out = torch.empty_like(q)
    bounds = cu_seqlens.tolist()
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e == s:
            continue
        qi = q[s:e].transpose(0, 1)
        ki = k[s:e].transpose(0, 1)
        vi = v[s:e].transpose(0, 1)
        if group > 1:
            ki, vi = ki.repeat_interleave(group, 0), vi.repeat_interleave(group, 0)
        o = F.scaled_dot_product_attention(qi[None], ki[None], vi[None], is_causal=causal, scale=softmax_scale)
        out[s:e] = o[0].transpose(0, 1)
    return out


def get_attention(impl: str):
    """Return `fn(q, k, v, cu_seqlens, max_seqlen, causal, softmax_scale)` for `impl`."""
    if impl == "torch":
        return varlen_attention_torch
    if impl == "triton":
        from l2v.kernels import flash_attn  # raises OptionalDependencyError without triton

        def triton_attention(q, k, v, cu_seqlens, max_seqlen, causal=False, softmax_scale=None):
            # cu_seqlens contents are checked once per forward by the engine, not once per layer.
            return flash_attn.flash_attn_varlen_fwd(q, k, v, cu_seqlens, max_seqlen, causal=causal,
                                                    softmax_scale=softmax_scale, check_cu_seqlens_values=False)

        triton_attention.check_cu_seqlens = flash_attn.check_cu_seqlens
        return triton_attention
    raise InputError(f"unknown attn_impl {impl!r}", hint=f"choose one of {', '.join(ATTN_IMPLS)}")
