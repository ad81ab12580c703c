"""Swap the packed engine's projections to quantized GEMMs; collect activation ranges for SmoothQuant.

Only the engine's own references (`PackedLayer.q_proj`, ...) are replaced: the HF model keeps its
`nn.Linear` modules unless `free_source=True`, which empties their weights to save memory (the HF
model is then unusable; for benchmarks that build a throwaway model).
"""
from __future__ import annotations

import torch

from l2v.engine.packed import LINEAR_NAMES, PackedEncoder
from l2v.engine.qlinear import MODES, QuantLinear, smoothquant_scales
from l2v.errors import InputError
from l2v.numerics import capture_inputs


def _check(encoder, names):
    if not isinstance(encoder, PackedEncoder):
        raise InputError(f"expected a PackedEncoder, got {type(encoder).__name__}")
    bad = [n for n in names if n not in LINEAR_NAMES]
    if bad:
        raise InputError(f"unknown projection names {bad}", hint=f"choose from {', '.join(LINEAR_NAMES)}")


@torch.no_grad()
def collect_act_amax(encoder: PackedEncoder, batches, names=LINEAR_NAMES) -> dict:
    """Run `encoder(batch)` for each batch and return {"layers.{i}.{name}": per-input-channel max|x|}."""
    _check(encoder, names)
    stats = {}

    def seen(key, x):
        amax = x.detach().reshape(-1, x.shape[-1]).abs().amax(0).float()
        stats[key] = amax if key not in stats else torch.maximum(stats[key], amax)

    modules = {f"layers.{i}.{name}": getattr(layer, name) for i, layer in enumerate(encoder.layers) for name in names}
    with capture_inputs(modules, seen, pre=True):
        for batch in batches:
            encoder(batch)
    return stats


def quantize_linears(encoder: PackedEncoder, mode: str, names=LINEAR_NAMES, act_amax: dict | None = None,
                     alpha: float = 0.5, free_source: bool = False) -> PackedEncoder:
    """Replace the engine's projections `names` with `QuantLinear(mode)`, in place; returns the engine.

    `act_amax` (from `collect_act_amax`) turns on SmoothQuant with migration strength `alpha` for the
    projections it has statistics for. Embeddings, norms and the attention kernel are untouched.
    """
    if mode not in MODES:
        raise InputError(f"unknown quantization mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    _check(encoder, names)
    for i, layer in enumerate(encoder.layers):
        for name in names:
            src = getattr(layer, name)
            if isinstance(src, QuantLinear):
                raise InputError(f"layers.{i}.{name} is already quantized ({src.mode})")
            amax = None if act_amax is None else act_amax.get(f"layers.{i}.{name}")
            smooth = None if amax is None or mode == "bf16" else smoothquant_scales(amax, src.weight, alpha)
            setattr(layer, name, QuantLinear(src, mode, smooth=smooth))
            if free_source:
                src.weight = torch.nn.Parameter(src.weight.new_empty(0), requires_grad=False)
    if encoder._compiled is not None:  # recompile against the new modules
        encoder.set_compile(encoder._compile_arg)
    return encoder
