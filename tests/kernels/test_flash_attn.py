"""Triton varlen flash attention vs per-sequence PyTorch attention.

Accuracy criterion (flash-attention tests/test_flash_attn.py style): against an fp32 reference on
upcast inputs, the kernel's max abs error must be at most 2x the error of plain PyTorch attention
computed in the same low dtype (+1e-6 floor). fp32 inputs must match to 1e-4 (TF32 on GPU: 2e-3).
Default run: small shapes under the CPU interpreter (conftest sets TRITON_INTERPRET=1 without
CUDA). `-m gpu`: full sizes on CUDA.
"""
from __future__ import annotations

import math

import pytest
import torch

LOW = (torch.float16, torch.bfloat16)


def make_pack(lens, n_heads, n_kv, head_dim, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    total = sum(lens)
    q, k, v = (torch.randn(total, h, head_dim, generator=g).to(dtype).to(device) for h in (n_heads, n_kv, n_kv))
    cu = torch.tensor([0] + torch.tensor(lens, dtype=torch.int64).cumsum(0).tolist(), dtype=torch.int32, device=device)
    return q, k, v, cu


def attention_ref(q, k, v, cu, causal=False, scale=None, upcast=True):
    """Per-sequence attention. upcast: fp32 everywhere. Else scores and output in q's dtype, softmax
    in fp32 then cast back (flash-attention `attention_ref(upcast=False)`)."""
    dtype = torch.float32 if upcast else q.dtype
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    group = q.shape[1] // k.shape[1]
    out = torch.zeros(q.shape, dtype=dtype, device=q.device)
    bounds = cu.tolist()
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e == s:
            continue
        qi = q[s:e].to(dtype).transpose(0, 1) * scale
        ki = k[s:e].to(dtype).repeat_interleave(group, 1).transpose(0, 1)
        vi = v[s:e].to(dtype).repeat_interleave(group, 1).transpose(0, 1)
        scores = qi @ ki.transpose(1, 2)
        if causal:
            scores = scores.masked_fill(torch.ones(e - s, e - s, dtype=torch.bool, device=q.device).triu(1),
                                        float("-inf"))
        probs = torch.softmax(scores.float(), dim=-1).to(dtype)
        out[s:e] = (probs @ vi).transpose(0, 1)
    return out


def check_close(fa, q, k, v, cu, causal=False, scale=None):
    lens = (cu[1:] - cu[:-1]).tolist()
    out = fa.varlen_attention(q, k, v, cu, max(lens), causal=causal, softmax_scale=scale)
    assert out.shape == q.shape and out.dtype == q.dtype
    ref = attention_ref(q, k, v, cu, causal, scale, upcast=True)
    err = (out.float() - ref).abs().max().item() if q.numel() else 0.0
    if q.dtype in LOW:
        pt_err = (attention_ref(q, k, v, cu, causal, scale, upcast=False).float() - ref).abs().max().item()
        assert err <= 2 * pt_err + 1e-6, f"kernel err {err} > 2 x torch {q.dtype} err {pt_err}"
    else:
        tol = 1e-4 if fa.INTERPRET else 2e-3  # GPU: tl.dot on fp32 uses TF32
        assert err <= tol, f"fp32 err {err}"
    return err


# (dtype, head_dim, n_heads, n_kv_heads, lens): small enough for the interpreter, each axis covered.
CPU_CASES = [
    (torch.float32, 64, 8, 1, [1, 97, 0, 33]),        # GQA 8, empty + single-token sequences
    (torch.float16, 64, 4, 1, [97, 0, 1, 50]),        # GQA 4
    (torch.bfloat16, 64, 2, 2, [64, 1, 0, 7]),        # GQA 1
    (torch.float16, 128, 2, 2, [1025]),               # long, odd, several key blocks
    (torch.bfloat16, 128, 4, 1, [0, 97, 1]),
    (torch.float16, 256, 2, 1, [1, 97, 130]),         # Gemma head dim
    (torch.bfloat16, 256, 2, 2, [0, 97, 1]),
    (torch.float32, 16, 4, 2, [5, 0, 20]),            # tiny-model head dims
    (torch.float32, 32, 4, 2, [3, 70]),
]


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("dtype,head_dim,n_heads,n_kv,lens", CPU_CASES,
                         ids=[f"{str(c[0])[6:]}-d{c[1]}-h{c[2]}kv{c[3]}-{len(c[4])}seq" for c in CPU_CASES])
def test_matches_reference(fa, kernel_device, dtype, head_dim, n_heads, n_kv, lens, causal):
    q, k, v, cu = make_pack(lens, n_heads, n_kv, head_dim, dtype, kernel_device)
    check_close(fa, q, k, v, cu, causal=causal)


def test_softmax_scale_and_noncontiguous_views(fa, kernel_device):
    # q, k, v as strided views into one fused qkv buffer, as a fused projection would give.
    lens, h, kv, d = [40, 0, 9], 4, 2, 64
    qkv = torch.randn(sum(lens), h + 2 * kv, d, generator=torch.Generator().manual_seed(1)).to(kernel_device)
    q, k, v = qkv[:, :h], qkv[:, h:h + kv], qkv[:, h + kv:]
    cu = torch.tensor([0, 40, 40, 49], dtype=torch.int32, device=kernel_device)
    check_close(fa, q, k, v, cu, scale=0.3)


def test_default_scale_is_inverse_sqrt_head_dim(fa, kernel_device):
    q, k, v, cu = make_pack([20, 3], 2, 1, 64, torch.float32, kernel_device)
    a = fa.varlen_attention(q, k, v, cu, 20)
    b = fa.varlen_attention(q, k, v, cu, 20, softmax_scale=1 / 8)
    assert torch.equal(a, b)


def test_empty_pack(fa, kernel_device):
    q, k, v, cu = make_pack([0, 0], 2, 1, 64, torch.float16, kernel_device)
    out = fa.varlen_attention(q, k, v, cu, 0)
    assert out.shape == (0, 2, 64)


def _bad(fa, kernel_device, **over):
    q, k, v, cu = make_pack([5, 3], 4, 2, 64, torch.float16, kernel_device)
    args = dict(q=q, k=k, v=v, cu_seqlens=cu, max_seqlen=5)
    args.update(over)
    if "cu_seqlens" in over:
        args["cu_seqlens"] = args["cu_seqlens"].to(kernel_device)
    return fa.varlen_attention(**args)


@pytest.mark.parametrize("over,match", [
    (lambda q, k, v, cu: {"q": q.float()}, "share a dtype"),
    (lambda q, k, v, cu: {"q": q.double(), "k": k.double(), "v": v.double()}, "dtype torch.float64"),
    (lambda q, k, v, cu: {"q": q[..., :48], "k": k[..., :48], "v": v[..., :48]}, "head_dim=48"),
    (lambda q, k, v, cu: {"q": q[:, :3]}, "n_heads=3 must be a multiple of n_kv_heads=2"),
    (lambda q, k, v, cu: {"k": k[:7], "v": v[:7]}, "does not match q shape"),
    (lambda q, k, v, cu: {"v": v[:, :1]}, "same shape"),
    (lambda q, k, v, cu: {"q": q[0]}, "3 dims"),
    (lambda q, k, v, cu: {"cu_seqlens": cu.long()}, "int32"),
    (lambda q, k, v, cu: {"cu_seqlens": cu[:1]}, "at least 2"),
    (lambda q, k, v, cu: {"cu_seqlens": torch.tensor([1, 5, 8], dtype=torch.int32)}, "start at 0"),
    (lambda q, k, v, cu: {"cu_seqlens": torch.tensor([0, 6, 5, 8], dtype=torch.int32)}, "non-decreasing"),
    (lambda q, k, v, cu: {"cu_seqlens": torch.tensor([0, 5, 7], dtype=torch.int32)}, r"cu_seqlens\[-1\]=7"),
    (lambda q, k, v, cu: {"max_seqlen": 4}, "max_seqlen=4"),
    (lambda q, k, v, cu: {"max_seqlen": 5.0}, "Python int"),
    (lambda q, k, v, cu: {"q": torch.zeros(8, 4, 64, dtype=torch.float16, device="meta")}, "is on"),
], ids=["mixed-dtype", "fp64", "head-dim", "gqa", "total", "kv-shape", "ndim", "cu-dtype", "cu-len",
        "cu-start", "cu-monotonic", "cu-last", "max-seqlen", "max-seqlen-type", "device"])
def test_value_errors(fa, kernel_device, over, match):
    q, k, v, cu = make_pack([5, 3], 4, 2, 64, torch.float16, kernel_device)
    with pytest.raises(ValueError, match=match):
        _bad(fa, kernel_device, **over(q, k, v, cu))


def test_requires_grad_rejected(fa, kernel_device):
    q, k, v, cu = make_pack([5, 3], 4, 2, 64, torch.float32, kernel_device)
    with pytest.raises(ValueError, match="forward-only"):
        fa.varlen_attention(q.requires_grad_(), k, v, cu, 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_tensors_rejected_when_compiled(fa):
    if fa.INTERPRET:
        pytest.skip("interpreter accepts CPU tensors")
    q, k, v, cu = make_pack([5, 3], 4, 2, 64, torch.float16, "cpu")
    with pytest.raises(ValueError, match="CUDA tensors"):
        fa.varlen_attention(q, k, v, cu, 5)


def _random_lens(n, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    return [0, 1] + torch.randint(lo, hi + 1, (n,), generator=g).tolist()


# (GQA group, causal, longest length): every group, both causal flags, short and long packs.
GPU_MIXES = [(1, False, 1025), (4, False, 4096), (8, False, 128), (4, True, 2048), (8, True, 1025)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", LOW, ids=["fp16", "bf16"])
@pytest.mark.parametrize("head_dim", [64, 128, 256])
@pytest.mark.parametrize("group,causal,max_len", GPU_MIXES, ids=[f"g{g}-{'causal' if c else 'bidir'}-L{m}"
                                                                  for g, c, m in GPU_MIXES])
def test_gpu_full_size(fa, dtype, head_dim, group, causal, max_len):
    if fa.INTERPRET:
        pytest.skip("TRITON_INTERPRET=1: the gpu tests need the compiled kernel")
    lens = _random_lens(16, 1, max_len, seed=head_dim + group + max_len) + [max_len]
    n_kv = 8 if group > 1 else 16
    q, k, v, cu = make_pack(lens, n_kv * group, n_kv, head_dim, dtype, "cuda")
    check_close(fa, q, k, v, cu, causal=causal)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_sdpa_equal_lengths(fa):
    if fa.INTERPRET:
        pytest.skip("TRITON_INTERPRET=1")
    b, s, h, kv, d = 8, 512, 32, 8, 128
    q, k, v, cu = make_pack([s] * b, h, kv, d, torch.bfloat16, "cuda")
    out = fa.varlen_attention(q, k, v, cu, s)
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        q.view(b, s, h, d).transpose(1, 2), k.view(b, s, kv, d).transpose(1, 2).repeat_interleave(h // kv, 1),
        v.view(b, s, kv, d).transpose(1, 2).repeat_interleave(h // kv, 1))
    torch.testing.assert_close(out.view(b, s, h, d), sdpa.transpose(1, 2), atol=2e-2, rtol=2e-2)
