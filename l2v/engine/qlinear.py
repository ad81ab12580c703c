"""Quantized GEMMs for the packed engine: fp8 e4m3 and int8 W8A8, bf16 as the reference.

- fp8: weight scales per output channel, activation scales per token (dynamic, amax / 448),
  `torch._scaled_mm` with row-wise scales on CUDA (sm89+, else `InputError`); on CPU the same
  numerics are emulated with `float8_e4m3fn` round trips and an fp32 matmul.
- int8: symmetric, weight per output channel, activation per token (amax / 127, round to nearest),
  `torch._int_mm` (int8 x int8 -> int32; CUDA needs > 16 rows, so fewer are zero-padded), then
  rescaled in fp32. Optional SmoothQuant vector `smooth` [in]: x / s, W * s (weights folded at build).
- bf16: plain `F.linear` in bf16 (the reference for speed comparisons).
Outputs come back in the input's dtype. Inference only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from l2v.errors import InputError
from l2v.numerics import FP8_E4M3_MAX, INT8_MAX, absmax_scale, quantize
from l2v.numerics import smoothquant_scales as _smoothquant_scales

MODES = ("fp8", "int8", "bf16")
FP8_MAX = FP8_E4M3_MAX  # torch.finfo(torch.float8_e4m3fn).max


def require_fp8_capability(cap) -> None:
    """fp8 tensor-core GEMMs need compute capability 8.9 (Ada) or newer."""
    if tuple(cap) < (8, 9):
        raise InputError(f"fp8 GEMMs need an sm89+ GPU (Ada/Hopper or newer); this GPU is sm{cap[0]}{cap[1]}",
                         hint="use mode='int8' or 'bf16' on this GPU")


def quantize_per_row(x: torch.Tensor, mode: str):
    """Symmetric per-row quantization of a 2-D tensor. Returns (q, scale [rows, 1] fp32)."""
    x = x.float()
    qmax = FP8_MAX if mode == "fp8" else INT8_MAX
    scale = absmax_scale(x, axis=1, qmax=qmax)
    if mode == "fp8":  # the cast rounds to the e4m3 grid
        return (x / scale).clamp(-qmax, qmax).to(torch.float8_e4m3fn), scale
    return quantize(x, scale, qmax).to(torch.int8), scale


def fp8_matmul(xq, wq, x_scale, w_scale, out_dtype, use_scaled_mm: bool):
    """xq [M, K] fp8, wq [N, K] fp8, x_scale [M, 1], w_scale [N, 1] (fp32) -> [M, N]."""
    if use_scaled_mm:  # B must be column-major: the transpose view of a row-major [N, K]
        y = torch._scaled_mm(xq, wq.t(), scale_a=x_scale, scale_b=w_scale.reshape(1, -1), out_dtype=torch.bfloat16)
        return y.to(out_dtype)
    return ((xq.float() @ wq.float().t()) * x_scale * w_scale.reshape(1, -1)).to(out_dtype)


def int8_matmul(xq, wq, x_scale, w_scale, out_dtype):
    """xq [M, K] int8, wq [N, K] int8 -> int32 accumulate -> rescaled [M, N] in out_dtype."""
    rows = xq.shape[0]
    if xq.is_cuda and rows <= 16:  # cuBLAS int8 GEMM: "self.size(0) needs to be greater than 16"
        xq = torch.cat([xq, xq.new_zeros(17 - rows, xq.shape[1])])
    acc = torch._int_mm(xq, wq.t())[:rows]
    return (acc.float() * x_scale * w_scale.reshape(1, -1)).to(out_dtype)


class QuantLinear(nn.Module):
    """Drop-in replacement for an `nn.Linear` (y = x W^T + b) with quantized weights."""

    def __init__(self, linear: nn.Linear, mode: str, smooth: torch.Tensor | None = None):
        super().__init__()
        if mode not in MODES:
            raise InputError(f"unknown quantization mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
        if not isinstance(linear, nn.Linear):
            raise InputError(f"expected an nn.Linear, got {type(linear).__name__}")
        self.mode, self.in_features, self.out_features = mode, linear.in_features, linear.out_features
        w = linear.weight.detach()
        dev = w.device
        if mode == "fp8" and dev.type == "cuda":
            require_fp8_capability(torch.cuda.get_device_capability(dev))
            if self.in_features % 16 or self.out_features % 16:
                raise InputError(f"fp8 _scaled_mm needs in/out features divisible by 16, got "
                                 f"{self.in_features}x{self.out_features}")
        if mode == "int8" and dev.type == "cuda" and (self.in_features % 8 or self.out_features % 8):
            raise InputError(f"int8 _int_mm needs in/out features divisible by 8, got "
                             f"{self.in_features}x{self.out_features}")
        if smooth is not None:
            if mode == "bf16":
                raise InputError("a SmoothQuant vector only applies to mode='int8' or 'fp8'")
            smooth = torch.as_tensor(smooth, dtype=torch.float32, device=dev).reshape(-1)
            if smooth.numel() != self.in_features or not bool((smooth > 0).all()):
                raise InputError(f"smooth must be {self.in_features} positive values, got {smooth.numel()}")
            w = w.float() * smooth[None, :]
            self.register_buffer("inv_smooth", (1.0 / smooth))
        else:
            self.inv_smooth = None
        if mode == "bf16":
            self.register_buffer("weight", w.to(torch.bfloat16))
            self.w_scale = None
        else:
            wq, w_scale = quantize_per_row(w, mode)
            self.register_buffer("weight", wq)
            self.register_buffer("w_scale", w_scale)
        b = linear.bias
        self.register_buffer("bias", None if b is None else b.detach().clone())

    def extra_repr(self) -> str:
        smooth = self.inv_smooth is not None
        return f"{self.in_features}, {self.out_features}, mode={self.mode}, smooth={smooth}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, dtype = x.shape, x.dtype
        x2 = x.reshape(-1, self.in_features)
        if self.mode == "bf16":
            y = F.linear(x2.to(torch.bfloat16), self.weight).to(dtype)
        else:
            if self.inv_smooth is not None:
                x2 = x2.float() * self.inv_smooth
            xq, x_scale = quantize_per_row(x2, self.mode)
            if self.mode == "fp8":
                y = fp8_matmul(xq, self.weight, x_scale, self.w_scale, dtype, use_scaled_mm=x.is_cuda)
            else:
                y = int8_matmul(xq, self.weight, x_scale, self.w_scale, dtype)
        if self.bias is not None:
            y = y + self.bias.to(dtype)
        return y.reshape(*shape[:-1], self.out_features)


def smoothquant_scales(act_amax: torch.Tensor, weight: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """SmoothQuant s_j = max|X_j|^alpha / max|W_:,j|^(1-alpha) (Xiao et al. 2023), per input channel."""
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha}")
    return _smoothquant_scales(act_amax, weight.detach().float().abs().amax(dim=0), alpha)
