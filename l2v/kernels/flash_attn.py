"""Varlen (packed, padding-free) flash attention forward in Triton: bidirectional or causal, GQA.

Origin: the algorithm is FlashAttention-2 (Tri Dao, "FlashAttention-2: Faster Attention with Better
Parallelism and Work Partitioning", 2023): tiled Q x K^T, online softmax in fp32 with exp2, one
rescale of the accumulator per key block. The tensor layout follows `flash_attn_varlen_func`: q is
`[total_tokens, n_heads, head_dim]`, k / v are `[total_tokens, n_kv_heads, head_dim]`, sequences are
concatenated without padding and delimited by `cu_seqlens` (int32, `[batch + 1]`, starts at 0, ends
at total_tokens). The file has three layers, like Liger-Kernel `ops/geglu.py` and flash-attention
`flash_attn_triton.py`: the `@triton.jit` kernel, a plain-Python launcher with host-side checks
(`InputError`, a `ValueError`, naming the bad value), and the public function `varlen_attention`.

Limits: forward only (no backward, no autograd.Function: inference); self-attention (q and k/v share
`cu_seqlens`); head_dim one of 16, 32, 64, 128, 256 (64/128/256 are the targets; 16/32 exist for
tiny test models); fp16 / bf16 (fp32 accepted too: TF32 tensor cores on GPU, exact in the
interpreter); NVIDIA sm80 or newer; no dropout, no alibi, no sliding window, no KV cache.

Tested on: NO GPU YET. Numerics only under the Triton CPU interpreter (`TRITON_INTERPRET=1`,
triton 3.9.0) with fp32, fp16 and bf16 inputs; the compiled path is only known to lower to cubin for
sm80 (mma.sync) and sm90 (wgmma) via ahead-of-time `triton.compile` without a device. The triton 3.9 interpreter computes `tl.dot` on the raw uint16 bits
of bf16 tiles (wrong results), so when interpreting bf16 the kernel upcasts tiles to fp32 before
`tl.dot` (`UPCAST_DOT`); the compiled GPU path never does. The bf16 tensor-core path, the autotune
configs and the performance are unmeasured until `pytest -m gpu` and `bench/gpu_engine.py` run on a
GPU (see docs/gpu.md).

`TRITON_INTERPRET` is read when this module is imported (that is when `@triton.jit` decides); set it
before importing. Importing this module needs triton; `import l2v.kernels` does not.
"""
from __future__ import annotations

import math
import os

import torch

from l2v.errors import InputError, OptionalDependencyError

try:
    import triton
    import triton.language as tl
except ImportError as exc:  # pragma: no cover - exercised only where triton is absent
    raise OptionalDependencyError("triton", "gpu", "the Triton flash-attention kernel") from exc

__all__ = ["varlen_attention", "flash_attn_varlen_fwd", "SUPPORTED_HEAD_DIMS", "INTERPRET"]

SUPPORTED_HEAD_DIMS = (16, 32, 64, 128, 256)
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")
# One fixed config in the interpreter (no autotune): big tiles mean fewer numpy calls, fast CPU tests;
# 128 for head_dim 256 because 64x256 tiles were oddly slow in the triton 3.9 interpreter.
_INTERPRET_BLOCK = {16: 64, 32: 64, 64: 64, 128: 64, 256: 128}
_MAX_GRID_Z = 65535


# ---------------------------------------------------------------- layer 1: the Triton kernel
@triton.jit
def _attn_fwd_kernel(
    Q, K, V, Out, cu_seqlens, sm_scale,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    SEQ_BUCKET,  # next power of two of max_seqlen: an autotune key only
    GROUP,  # n_heads // n_kv_heads (runtime: one binary serves every GQA ratio)
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    UPCAST_DOT: tl.constexpr,  # interpreter-only bf16 workaround, see module docstring
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    head = tl.program_id(1)
    seq = tl.program_id(2)
    start = tl.load(cu_seqlens + seq)
    seqlen = tl.load(cu_seqlens + seq + 1) - start
    if pid_m * BLOCK_M >= seqlen:
        return
    kv_head = head // GROUP
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    m_valid = offs_m < seqlen
    tok_m = (start + offs_m).to(tl.int64)  # int64: token * stride may exceed 2**31
    q = tl.load(Q + tok_m[:, None] * stride_qt + head * stride_qh + offs_d[None, :],
                mask=m_valid[:, None], other=0.0)
    if UPCAST_DOT:
        q = q.to(tl.float32)
    qk_scale = sm_scale * 1.4426950408889634  # softmax via exp2
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if CAUSAL:
        hi = tl.minimum(seqlen, (pid_m + 1) * BLOCK_M)
    else:
        hi = seqlen
    k_base = K + kv_head * stride_kh
    v_base = V + kv_head * stride_vh
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        n_valid = cols < seqlen
        tok_n = (start + cols).to(tl.int64)
        k = tl.load(k_base + tok_n[:, None] * stride_kt + offs_d[None, :], mask=n_valid[:, None], other=0.0)
        if UPCAST_DOT:
            k = k.to(tl.float32)
        qk = tl.dot(q, tl.trans(k)) * qk_scale  # [BLOCK_M, BLOCK_N], fp32 accumulate
        keep = n_valid[None, :]
        if CAUSAL:
            keep = keep & (offs_m[:, None] >= cols[None, :])
        qk = tl.where(keep, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))  # finite: every row has key 0 in its first block
        p = tl.exp2(qk - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_base + tok_n[:, None] * stride_vt + offs_d[None, :], mask=n_valid[:, None], other=0.0)
        if UPCAST_DOT:
            v = v.to(tl.float32)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
    acc = acc / l_i[:, None]
    tl.store(Out + tok_m[:, None] * stride_ot + head * stride_oh + offs_d[None, :],
             acc.to(Out.dtype.element_ty), mask=m_valid[:, None])


def _gpu_configs():
    # (BLOCK_M, BLOCK_N, num_warps, num_stages); all of them AOT-compile for sm80 and sm90 (tests, -m slow)
    shapes = [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 2), (128, 32, 4, 3), (64, 64, 4, 3),
              (64, 32, 4, 2), (128, 64, 8, 2), (64, 64, 8, 2)]
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s) for bm, bn, w, s in shapes]


def _prune_configs(configs, named_args, **kwargs):
    head_dim = named_args.get("HEAD_DIM", kwargs.get("HEAD_DIM", 128))
    bucket = named_args.get("SEQ_BUCKET", kwargs.get("SEQ_BUCKET", 1 << 20))
    kept = [c for c in configs if c.kwargs["BLOCK_M"] <= max(64, bucket)]
    if head_dim >= 256:  # shared memory: big tiles with deep pipelines do not fit
        kept = [c for c in kept if c.kwargs["BLOCK_N"] <= 64 and c.num_stages <= 2] or kept[:1]
    return kept or configs[:1]


# Autotune keyed on head dim, the max_seqlen bucket and causal (triton adds the dtypes to the key).
_attn_fwd_tuned = triton.autotune(
    configs=_gpu_configs(), key=["HEAD_DIM", "SEQ_BUCKET", "CAUSAL"],
    prune_configs_by={"early_config_prune": _prune_configs},
) if not INTERPRET else None


# ---------------------------------------------------------------- layer 2: launcher + host checks
def _check_tensor(name: str, t, ndim: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise InputError(f"{name} must have {ndim} dims, got shape {tuple(t.shape)}")


def check_cu_seqlens(cu_seqlens: torch.Tensor, total: int, max_seqlen: int) -> None:
    """Data-dependent checks on cu_seqlens (one device->host copy): starts at 0, monotonic, last ==
    total, no sequence longer than max_seqlen."""
    cu = cu_seqlens.detach().to("cpu", torch.int64)
    if int(cu[0]) != 0:
        raise InputError(f"cu_seqlens must start at 0, got {int(cu[0])}")
    lens = cu[1:] - cu[:-1]
    if bool((lens < 0).any()):
        bad = int(torch.nonzero(lens < 0)[0, 0])
        raise InputError(f"cu_seqlens must be non-decreasing; cu_seqlens[{bad + 1}]={int(cu[bad + 1])} "
                         f"< cu_seqlens[{bad}]={int(cu[bad])}")
    if int(cu[-1]) != total:
        raise InputError(f"cu_seqlens[-1]={int(cu[-1])} must equal total_tokens={total}")
    longest = int(lens.max()) if lens.numel() else 0
    if longest > max_seqlen:
        raise InputError(f"max_seqlen={max_seqlen} is smaller than the longest sequence ({longest})")


def flash_attn_varlen_fwd(q, k, v, cu_seqlens, max_seqlen, *, causal=False, softmax_scale=None,
                          check_cu_seqlens_values=True):
    """Launch the kernel after host-side checks. Returns a new `[total, n_heads, head_dim]` tensor."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, t, 3)
    _check_tensor("cu_seqlens", cu_seqlens, 1)
    if q.dtype not in SUPPORTED_DTYPES:
        raise InputError(f"q dtype {q.dtype} is not supported; use one of {SUPPORTED_DTYPES}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise InputError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    total, n_heads, head_dim = q.shape
    if head_dim not in SUPPORTED_HEAD_DIMS:
        raise InputError(f"head_dim={head_dim} is not supported; use one of {SUPPORTED_HEAD_DIMS}")
    if k.shape != v.shape:
        raise InputError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if k.shape[0] != total or k.shape[2] != head_dim:
        raise InputError(f"k/v shape {tuple(k.shape)} does not match q shape {tuple(q.shape)} "
                         f"(need [total_tokens={total}, n_kv_heads, head_dim={head_dim}])")
    n_kv = k.shape[1]
    if n_kv == 0 or n_heads % n_kv != 0:
        raise InputError(f"n_heads={n_heads} must be a multiple of n_kv_heads={n_kv} (GQA)")
    if cu_seqlens.dtype != torch.int32:
        raise InputError(f"cu_seqlens must be int32, got {cu_seqlens.dtype}")
    if cu_seqlens.numel() < 2:
        raise InputError(f"cu_seqlens needs at least 2 entries (batch + 1), got {cu_seqlens.numel()}")
    batch = cu_seqlens.numel() - 1
    if batch > _MAX_GRID_Z:
        raise InputError(f"batch={batch} sequences exceeds the grid limit {_MAX_GRID_Z}; split the batch")
    if isinstance(max_seqlen, torch.Tensor) or not isinstance(max_seqlen, int) or max_seqlen < 0:
        raise InputError(f"max_seqlen must be a non-negative Python int, got {max_seqlen!r}")
    for name, t in (("k", k), ("v", v), ("cu_seqlens", cu_seqlens)):
        if t.device != q.device:
            raise InputError(f"{name} is on {t.device} but q is on {q.device}")
    if not INTERPRET:
        if q.device.type != "cuda":
            raise InputError(f"the Triton kernel needs CUDA tensors, got device {q.device} "
                             "(set TRITON_INTERPRET=1 before import to run the CPU interpreter)")
        cap = torch.cuda.get_device_capability(q.device)
        if cap < (8, 0):
            raise InputError(f"GPU compute capability sm{cap[0]}{cap[1]} is below sm80")
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        raise InputError("varlen_attention is forward-only; inputs require grad (use torch.no_grad())")
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(head_dim)
    softmax_scale = float(softmax_scale)
    if not math.isfinite(softmax_scale):
        raise InputError(f"softmax_scale must be finite, got {softmax_scale}")
    if check_cu_seqlens_values:
        check_cu_seqlens(cu_seqlens, total, max_seqlen)

    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    if total == 0 or max_seqlen == 0:
        return out
    args = (q, k, v, out, cu_seqlens, softmax_scale, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
            v.stride(0), v.stride(1), out.stride(0), out.stride(1), triton.next_power_of_2(max_seqlen),
            n_heads // n_kv)
    meta = dict(HEAD_DIM=head_dim, CAUSAL=bool(causal))
    if INTERPRET:
        block = _INTERPRET_BLOCK[head_dim]
        grid = (triton.cdiv(max_seqlen, block), n_heads, batch)
        _attn_fwd_kernel[grid](*args, **meta, UPCAST_DOT=q.dtype == torch.bfloat16, BLOCK_M=block, BLOCK_N=block)
    else:
        def grid(m):
            return (triton.cdiv(max_seqlen, m["BLOCK_M"]), n_heads, batch)
        with torch.cuda.device(q.device):
            _attn_fwd_tuned[grid](*args, **meta, UPCAST_DOT=False)
    return out


# ---------------------------------------------------------------- layer 3: the public function
def varlen_attention(q, k, v, cu_seqlens, max_seqlen, causal=False, softmax_scale=None):
    """Attention over packed sequences: `q [total, H, D]`, `k/v [total, H_kv, D]`, `cu_seqlens` int32
    `[B+1]`, `max_seqlen` (Python int >= longest sequence). Bidirectional unless `causal=True`.
    `softmax_scale` defaults to 1/sqrt(D). Returns `[total, H, D]` in q's dtype."""
    return flash_attn_varlen_fwd(q, k, v, cu_seqlens, max_seqlen, causal=causal, softmax_scale=softmax_scale)
