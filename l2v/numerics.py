"""Quantization primitives, one copy for every user: the ONNX methods (l2v.quantize), the layer ranking
(quantize/sensitivity.py) and the packed engine's GEMMs (engine/qlinear.py). A leaf module: it imports
numpy only; torch is used when a torch tensor is passed in.

Every function takes a numpy array or a torch tensor and returns the same kind:
- `absmax_scale(x, axis, qmax)`: symmetric scale max|x| / qmax along `axis` (kept), floored at `eps`;
- `quantize(x, scale, qmax)`: round(x / scale) clipped to [-qmax, qmax] (still a float array);
- `fake_quant(x, axis, qmax)`: quantize then dequantize (what a kernel with those scales computes);
- `fake_quant_blocks(x, block, bits, axis)`: the same per block of `block` values along `axis`
  (MatMulNBits weights per block of input channels; its level-4 activations per token and block);
- `round_fp8(x)`, `fake_quant_fp8(x, axis)`: float8 e4m3 (round to the nearest e4m3 value, saturating at
  FP8_E4M3_MAX), per-axis absmax scale max|x| / 448 (TensorRT's fp8 weights per output channel);
- `fake_quant_static(x, scale, fmt)`: one precomputed scale for the whole tensor, int8 or fp8 (what an
  explicit-quantization graph's QuantizeLinear/DequantizeLinear pair computes with a calibrated scale);
- `smoothquant_scales(act_amax, w_amax, alpha)`: s = max|X|^a / max|W|^(1-a), clipped;
- `capture_inputs(modules, fn)`: forward hooks that hand every module's input to `fn`, removed on exit.
"""
from __future__ import annotations

import contextlib

import numpy as np

INT8_MAX = 127.0
FP8_E4M3_MAX = 448.0
SMOOTH_CLIP = (1e-4, 1e4)


def _is_np(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic, float, int))


def _round(x):
    return np.round(x) if _is_np(x) else x.round()


def _clip(x, lo, hi):
    return np.clip(x, lo, hi) if _is_np(x) else x.clamp(lo, hi)


def _floor(x, eps):
    return np.maximum(x, eps) if _is_np(x) else x.clamp_min(eps)


def amax(x, axis):
    if _is_np(x):
        return np.max(np.abs(x), axis=axis, keepdims=True)
    return x.abs().amax(dim=axis, keepdim=True)


def absmax_scale(x, axis=-1, qmax: float = INT8_MAX, eps: float = 1e-12):
    return _floor(amax(x, axis), eps) / qmax


def quantize(x, scale, qmax: float = INT8_MAX):
    return _clip(_round(x / scale), -qmax, qmax)


def fake_quant(x, axis=-1, qmax: float = INT8_MAX, eps: float = 1e-12):
    s = absmax_scale(x, axis, qmax, eps)
    return quantize(x, s, qmax) * s


def _blocks(x, block: int, axis: int):
    """`x` with `axis` moved last, zero-padded to a multiple of `block` and split: [..., n_blocks, block].
    Returns (blocks, undo) where undo(blocks) restores the original layout."""
    xp_np = _is_np(x)
    moved = np.moveaxis(x, axis, -1) if xp_np else x.movedim(axis, -1)
    n, pad = moved.shape[-1], (-moved.shape[-1]) % block
    if pad and xp_np:
        moved = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(0, pad)])
    elif pad:
        import torch

        moved = torch.nn.functional.pad(moved, (0, pad))

    def undo(blocks):
        out = blocks.reshape(*moved.shape)[..., :n]
        return np.moveaxis(out, -1, axis) if xp_np else out.movedim(-1, axis)
    return moved.reshape(*moved.shape[:-1], -1, block), undo


def fake_quant_per_block(x, block: int, axis: int = -1, qmax: float = INT8_MAX):
    """`fake_quant` with one scale per block of `block` values along `axis` (MatMulNBits' level-4 int8
    activations: per row and block of input channels, scale = max|a| / 127)."""
    blocks, undo = _blocks(x, block, axis)
    return undo(fake_quant(blocks, -1, qmax))


def fake_quant_blocks(x, block: int, bits: int = 8, axis: int = 0, symmetric: bool = True):
    """Block-wise weight quantization as MatMulNBits' round-to-nearest stores it, per block of `block`
    values along `axis`: symmetric scale = max|x| / 2^(bits-1) with codes -2^(bits-1) .. 2^(bits-1) - 1,
    or asymmetric min/max with a zero point."""
    blocks, undo = _blocks(x, block, axis)
    if symmetric:
        half = float(2 ** (bits - 1))
        scale = absmax_scale(blocks, -1, half)
        return undo(_clip(_round(blocks / scale), -half, half - 1) * scale)
    xp_np = _is_np(x)
    lo = blocks.min(axis=-1, keepdims=True) if xp_np else blocks.amin(-1, keepdim=True)
    hi = blocks.max(axis=-1, keepdims=True) if xp_np else blocks.amax(-1, keepdim=True)
    scale = _floor(hi - lo, 1e-12) / (2 ** bits - 1)
    zp = _round(-lo / scale)
    return undo((_clip(_round(blocks / scale) + zp, 0, 2 ** bits - 1) - zp) * scale)


def round_fp8(x):
    """Round to the nearest float8 e4m3fn value (saturating at +-FP8_E4M3_MAX), as a float array/tensor:
    QuantizeLinear to float8e4m3fn with saturate=1 (ONNX), TensorRT's fp8 quantization."""
    x = _clip(x, -FP8_E4M3_MAX, FP8_E4M3_MAX)
    if _is_np(x):
        import ml_dtypes

        return np.asarray(x, dtype=np.float32).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    import torch

    return x.float().to(torch.float8_e4m3fn).to(x.dtype if x.is_floating_point() else torch.float32)


def fake_quant_fp8(x, axis=-1, eps: float = 1e-12):
    """fp8 e4m3 with a symmetric scale max|x| / 448 along `axis` (kept)."""
    s = absmax_scale(x, axis, FP8_E4M3_MAX, eps)
    return round_fp8(x / s) * s


def fake_quant_static(x, scale: float, fmt: str = "int8"):
    """One calibrated scale for the whole tensor: int8 = clip(round_half_even(x / s), -128, 127) * s,
    fp8 = e4m3(x / s) * s (zero point 0 in both: TensorRT's explicit quantization is symmetric)."""
    if fmt == "int8":
        return _clip(_round(x / scale), -INT8_MAX - 1.0, INT8_MAX) * scale
    if fmt == "fp8":
        return round_fp8(x / scale) * scale
    raise ValueError(f"fmt {fmt!r}: use int8 or fp8")


def smoothquant_scales(act_amax, w_amax, alpha: float = 0.5, floor: float = 1e-5):
    """SmoothQuant (Xiao et al. 2023): per input channel s = max|X|^alpha / max|W|^(1-alpha), clipped to
    SMOOTH_CLIP; x / s and s * W keep x @ W exact in real arithmetic."""
    lo, hi = SMOOTH_CLIP
    if _is_np(act_amax):
        s = np.power(np.maximum(act_amax, floor), alpha) / np.power(np.maximum(w_amax, floor), 1.0 - alpha)
        return np.clip(s, lo, hi).astype(np.float32)
    s = act_amax.float().clamp_min(floor).pow(alpha) / w_amax.float().clamp_min(floor).pow(1.0 - alpha)
    return s.clamp(lo, hi)


@contextlib.contextmanager
def capture_inputs(modules: dict, fn, pre: bool = False):
    """Call `fn(name, x)` with the first input of each module in {name: module} on every forward while
    the context is open; the hooks are removed on exit, also on error."""
    handles = []
    try:
        for name, mod in modules.items():
            if pre:
                handles.append(mod.register_forward_pre_hook(lambda _m, args, name=name: fn(name, args[0])))
            else:
                handles.append(mod.register_forward_hook(lambda _m, args, _out, name=name: fn(name, args[0])))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def replaced_forward(replacements: dict):
    """{module: forward function} installed as instance attributes for the context, removed on exit
    (the class's own forward returns), also on error."""
    try:
        for mod, fwd in replacements.items():
            mod.forward = fwd
        yield
    finally:
        for mod in replacements:
            mod.__dict__.pop("forward", None)
