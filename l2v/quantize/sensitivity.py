"""Which decoder layers hurt the embedding most when quantized, measured end to end.

Each layer's projections alone are fake-quantized in PyTorch with the arithmetic of the kernel the
variant will run (after smoothing, if any; the outlier channels in fp32), and the drop in mean cosine
of the sentence embedding against fp32 on a few calibration texts is that layer's sensitivity:
- kernel "token" (`w8a8.per_token_int8`): int8 activations per token, int8 weights per output channel;
- kernel "nbits" (MatMulNBits at accuracy level 4): int8 activations per token and block of
  `block_size` input channels, 8-bit weights per block of input channels;
- kernel "tensor" (NNCF's static int8 for OpenVINO, `ov-int8`): one activation scale per tensor (here
  the batch's max|x|, standing in for the calibrated range), int8 weights per output channel.
(A per-projection output-SQNR ranking was tried first: it flags the late down_projs and misses layers
0-4, where the massive activations are made; end to end ranks those first.) The projections come from
the architecture descriptor (l2v/model/arch.py): a decoder Linear it does not know is an error.
"""
from __future__ import annotations

import numpy as np

from l2v.numerics import (FP8_E4M3_MAX, INT8_MAX, fake_quant, fake_quant_blocks, fake_quant_fp8, fake_quant_per_block,
                          fake_quant_static, replaced_forward)

STATIC_KERNELS = {"int8-static": ("int8", INT8_MAX), "fp8-static": ("fp8", FP8_E4M3_MAX)}


def _arch(model):
    from l2v.model.arch import arch_of

    return arch_of(model.config)


def kernel_arithmetic(kernel: str = "token", block_size: int = 32, act_amax: float | None = None):
    """(activation fake-quant, weight fake-quant) in torch; torch weights are [out, in]. The static
    kernels need `act_amax`, the calibrated range of the activation tensor (its scale is amax / qmax)."""
    if kernel in STATIC_KERNELS:
        fmt, qmax = STATIC_KERNELS[kernel]
        if act_amax is None:
            raise ValueError(f"kernel {kernel!r} needs the calibrated activation range (act_amax)")
        scale = max(float(act_amax), 1e-8) / qmax
        weight = (lambda w: fake_quant(w, axis=1)) if fmt == "int8" else (lambda w: fake_quant_fp8(w, axis=1))
        return (lambda x: fake_quant_static(x, scale, fmt)), weight
    if kernel == "nbits":
        return (lambda x: fake_quant_per_block(x, block_size, axis=-1),
                lambda w: fake_quant_blocks(w, block_size, 8, axis=1))
    if kernel == "tensor":
        return (lambda x: fake_quant(x, axis=tuple(range(x.ndim)), eps=1e-8)), (lambda w: fake_quant(w, axis=1))
    if kernel == "token7":  # int8-smooth with reduce_range: 7-bit weights
        return (lambda x: fake_quant(x, axis=-1, eps=1e-8)), (lambda w: fake_quant(w, axis=1, qmax=63.0))
    return (lambda x: fake_quant(x, axis=-1, eps=1e-8)), (lambda w: fake_quant(w, axis=1))


def fake_linear(m, scale, outlier_idx, fq_act, fq_w):
    """The forward of Linear `m` with the kernel's fake quantization: input scaled by 1/s (smoothing), the
    outlier input channels in fp32, the rest through (fq_act(x) @ fq_w(s * W)^T)."""
    import torch

    s = torch.from_numpy(np.asarray(scale if scale is not None else np.ones(m.in_features), dtype=np.float32))
    w = m.weight.data * s[None, :]
    keep = torch.ones(m.in_features)
    idx = torch.as_tensor(np.asarray(outlier_idx, dtype=np.int64))
    keep[idx] = 0.0
    wq, w_o = fq_w(w * keep[None, :]), w[:, idx]

    def fwd(x):
        xs = x / s
        y = fq_act(xs * keep) @ wq.T + xs[..., idx] @ w_o.T
        return y + m.bias if m.bias is not None else y
    return fwd


def _drop(ref: np.ndarray, got: np.ndarray) -> float:
    a = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    b = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
    return float(1.0 - (a * b).sum(1).mean())


def rank_layers_layerwise(layerwise, batches: list, outliers: dict | None = None, kernel: str = "token",
                          block_size: int = 32) -> list[tuple[str, float]]:
    """`rank_units(by="layer")` on a `LayerwiseModel`, each decoder layer's weights read once: the clean
    hidden states go through layer i, and so does every stream perturbed at an earlier layer, and a new
    stream starts with layer i fake-quantized on the clean input. L(L+1)/2 layer calls, one layer in memory."""
    import torch

    from l2v.numerics import replaced_forward

    batches = [{k: np.asarray(b[k]) for k in b.keys()} for b in batches]
    fq_act, fq_w = kernel_arithmetic(kernel, block_size)
    hidden, calls = layerwise.prepare(batches)
    streams: dict[int, list] = {}
    for i in range(layerwise.num_layers):
        layer = layerwise.layer(i)
        try:
            for k in streams:
                streams[k] = [layerwise.call(layer, h, calls[j], i) for j, h in enumerate(streams[k])]
            linears = {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
            fakes = {m: fake_linear(m, None, (outliers or {}).get(f"backbone.layers.{i}.{n}", []), fq_act, fq_w)
                     for n, m in linears.items()}
            with replaced_forward(fakes):
                streams[i] = [layerwise.call(layer, h, calls[j], i) for j, h in enumerate(hidden)]
            del fakes  # layer i's fake-quantized weights (a layer in fp32): not alive while layer i+1 loads
            hidden = [layerwise.call(layer, h, calls[j], i) for j, h in enumerate(hidden)]
        finally:
            layerwise.release(i)
    ref = layerwise.finish(hidden, batches)
    out = [(f"backbone.layers.{k}", _drop(ref, layerwise.finish(h, batches))) for k, h in streams.items()]
    return sorted(out, key=lambda t: -t[1])


def rank_units(model, batches: list, scales: dict, by: str = "layer", outliers: dict | None = None,
               kernel: str = "token", block_size: int = 32, act_amax: dict | None = None) -> list[tuple[str, float]]:
    """[(unit, cosine drop)] most sensitive first, one forward per unit (`by`: "layer", or "unit" for the
    projection groups of arch.py). `scales`: {module: smoothing s} (missing = 1); `outliers`:
    {module: input channels kept in fp32}; `act_amax`: {module: calibrated range of its (smoothed,
    outlier-free) input} for the static kernels."""
    import torch

    arch = _arch(model)
    linears = {}
    for n, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and (unit := arch.unit_of(n)):
            linears[n] = (m, unit.rpartition(".")[0] if by == "layer" else unit)
    units: dict[str, list[str]] = {}
    for n, (_, unit) in linears.items():
        units.setdefault(unit, []).append(n)

    def run():
        with torch.no_grad():
            return torch.cat([model(**{k: torch.from_numpy(b[k]) for k in b.keys()}) for b in batches]).numpy()

    def fake_forward(n: str):
        fq_act, fq_w = kernel_arithmetic(kernel, block_size, (act_amax or {}).get(n))
        return fake_linear(linears[n][0], scales.get(n), (outliers or {}).get(n, []), fq_act, fq_w)

    if not units:
        from l2v.errors import UnsupportedArchitectureError

        raise UnsupportedArchitectureError(f"{arch.model_type}: no decoder projections found to rank")
    ref = run()
    out = []
    for unit, names in units.items():
        with replaced_forward({linears[n][0]: fake_forward(n) for n in names}):
            got = run()
        out.append((unit, _drop(ref, got)))
    return sorted(out, key=lambda t: -t[1])
