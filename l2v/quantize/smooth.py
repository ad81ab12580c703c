"""int8-smooth: SmoothQuant scales from real-text calibration, folded into the fp32 graph, then W8A8.

For each group of projections reading one tensor (q/k/v after input_layernorm, gate/up after the MLP
norm, down_proj after act(gate)*up), s_j = max|X_j|^alpha / max|W_j|^(1-alpha); X/s goes into the
producer (RMSNorm weight, or up_proj's output columns for down_proj) and s*W into the weights. The
fold is exact in fp32; it is done on the exported graph (same graph, same pooling, same dynamic axes
as the validated fp32 model) rather than by re-exporting, which takes minutes on a CPU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from l2v.errors import ValidationError
from l2v.numerics import smoothquant_scales
from l2v.quantize import graph
from l2v.quantize.config import Int8SmoothConfig
from l2v.quantize.registry import register

SENSITIVITY_TEXTS = 8  # calibration texts (<= SENSITIVITY_TOKENS tokens) for the layer ranking
SENSITIVITY_TOKENS = 32


def calibrated_groups(model, stats: dict):
    """Yield (input tensor, consumer MatMuls, their module names) for every projection group whose
    modules all have calibration statistics."""
    linear = graph.linear_matmuls(model)
    module = {n.name: mod for n, mod in linear}
    for x, consumers in graph.groups_by_input(model, [n for n, _ in linear]).items():
        names = [module[c.name] for c in consumers]
        if all(n in stats for n in names):
            yield x, consumers, names


def foldable_groups(model, stats: dict, include_down: bool = True) -> list[tuple[list, np.ndarray]]:
    """[(consumer MatMuls, activation amax)] for groups whose scale can be folded into a producer."""
    producers = {o: n for n in model.graph.node for o in n.output}
    out = []
    for x, consumers, names in calibrated_groups(model, stats):
        if not include_down and any(n.endswith("down_proj") for n in names):
            continue
        prod = producers.get(x)
        if prod is None or prod.op_type != "Mul":
            continue  # o_proj (input from attention) would need an extra Mul node: left alone
        amax = np.max([stats[n]["amax"] for n in names], axis=0)
        out.append((consumers, amax))
    return out


def smooth(model, stats: dict, alpha: float, include_down: bool = True) -> dict:
    """Fold SmoothQuant scales into `model` in place; returns {module: (s, where the 1/s went)}."""
    folded = {}
    for consumers, amax in foldable_groups(model, stats, include_down):
        wmax = np.max([np.abs(graph.weight_of(model, c)).max(axis=1) for c in consumers], axis=0)
        s = smoothquant_scales(amax, wmax, alpha)
        where = graph.fold_input_scale(model, consumers, s)
        for c in consumers:
            folded[graph.module_name(c)] = (s, where)
    return folded


def outlier_channels(model, stats: dict, folded: dict, k: int) -> dict:
    """{input tensor: the k channels with the largest calibration max|x| (after smoothing, x/s)} for every
    projection group; these channels bypass int8 (w8a8.per_token_int8)."""
    if k <= 0:
        return {}
    out = {}
    for x, _, names in calibrated_groups(model, stats):
        amax = np.max([stats[n]["amax"] / (folded[n][0] if n in folded else 1.0) for n in names], axis=0)
        out[x] = np.sort(np.argsort(-amax, kind="stable")[:min(k, amax.size)])
    return out


def by_module(model, outliers: dict) -> dict:
    """{input tensor: channels} -> {module name: channels} (for the PyTorch sensitivity ranking)."""
    return {mod: outliers[n.input[0]] for n, mod in graph.linear_matmuls(model) if n.input[0] in outliers}


def check_fold(original, smoothed, ctx, what: str) -> float:
    """The fold must be exact in fp32: min cosine on a few calibration texts, else ValidationError."""
    from l2v.eval.metrics import cosine_rowwise
    from l2v.runtime.onnx import session

    batches = ctx.batches(ctx.calib_texts[:8], 64, batch=8)
    s_orig, s_smooth = session(original, spinning=False), session(smoothed, spinning=False)
    a = np.concatenate([s_orig.run(None, b.as_dict())[0] for b in batches])
    b_ = np.concatenate([s_smooth.run(None, b.as_dict())[0] for b in batches])
    cos = float(cosine_rowwise(a, b_).min())
    if cos < 0.9999:
        raise ValidationError(f"{what}: folding the scales changed the fp32 graph (min cosine {cos:.6f})",
                              hint="report this model; use int8-dynamic or w8 meanwhile")
    return cos


def sensitive_layers(ctx, cfg, folded: dict, outliers: dict | None = None,
                     kernel: str | None = None) -> list[tuple[str, float]]:
    """Decoder layers ranked most sensitive first (end to end, see sensitivity.py; cached per recipe).
    `outliers`: {module: fp32 channels}, as the graph will have them; `kernel` overrides `cfg.kernel`
    (`ov-int8` ranks with "tensor", NNCF's per-tensor activation scales)."""
    from l2v.quantize.sensitivity import rank_units

    kernel = kernel or cfg.kernel
    key = ("sensitivity", _recipe_key(cfg), kernel, cfg.block_size, cfg.calib_texts, cfg.calib_max_length)
    if key not in ctx.cache:
        batches = ctx.batches(ctx.calib_texts[:SENSITIVITY_TEXTS], SENSITIVITY_TOKENS, batch=SENSITIVITY_TEXTS)
        if ctx.streamed:
            from l2v.quantize.sensitivity import rank_layers_layerwise

            ctx.progress(f"ranking decoder layers by end-to-end sensitivity (kernel {kernel}), one layer "
                         "in memory at a time")
            ctx.cache[key] = rank_layers_layerwise(ctx.model_layerwise, batches, outliers=outliers,
                                                   kernel=kernel, block_size=cfg.block_size)
        else:
            ctx.progress(f"ranking decoder layers by end-to-end sensitivity (kernel {kernel})")
            ctx.cache[key] = rank_units(ctx.torch_model, batches, {k: v[0] for k, v in folded.items()},
                                        outliers=outliers, kernel=kernel, block_size=cfg.block_size)
    return ctx.cache[key]


def ranking_kernel(cfg) -> str:
    """The arithmetic the sensitivity ranking simulates: the config's kernel, 7-bit weights with reduce_range."""
    return "token7" if cfg.kernel == "token" and cfg.reduce_range else cfg.kernel


def _recipe_key(cfg) -> tuple:
    return (cfg.smoothing, float(cfg.alpha), cfg.smooth_down_proj, cfg.outliers)


def build_smoothed(ctx, cfg: Int8SmoothConfig, keep_units: int | None = None):
    """The smoothed, quantized graph and its facts (shared with `auto`, which varies `keep_units`)."""
    from l2v.quantize.onnx_methods import dynamic_quantize, nbits_quantize
    from l2v.model.arch import arch_of
    from l2v.quantize.w8a8 import per_token_int8

    stats = ctx.act_stats(cfg.calib_texts, cfg.calib_max_length)
    model = graph.load(ctx.source_path)
    facts = {"smoothed_matmuls": 0}
    folded = smooth(model, stats, float(cfg.alpha), cfg.smooth_down_proj) if cfg.smoothing else {}
    if folded:
        key = ("fold", float(cfg.alpha), cfg.smooth_down_proj)
        if key not in ctx.cache:
            ctx.cache[key] = check_fold(graph.load(ctx.source_path), model, ctx, "int8-smooth")
        facts.update(smoothed_matmuls=len(folded), fold_min_cosine=round(ctx.cache[key], 7))
    outliers = outlier_channels(model, stats, folded, cfg.outliers)
    if outliers:
        facts["outlier_channels"] = {"per_tensor": cfg.outliers, "tensors": len(outliers)}
    patterns = list(cfg.keep_fp32)
    k = cfg.keep_sensitive if keep_units is None else keep_units
    if k:
        ranked = sensitive_layers(ctx, cfg, folded, by_module(model, outliers), kernel=ranking_kernel(cfg))
        kept = [u for u, _ in ranked[:k]]
        arch = arch_of(ctx.torch_model.config)
        patterns += [p for u in kept for p in arch.unit_patterns(u)]
        facts["kept_layers"] = kept
    keep = graph.node_names(model, patterns)
    if cfg.kernel == "token":
        q = per_token_int8(model, keep, reduce_range=cfg.reduce_range, outliers=outliers, fused=cfg.fused)
        weights = "7-bit" if cfg.reduce_range else "int8"
        facts["activations"] = f"int8 per token (dynamic), weights {weights} per output channel" + (
            f", {cfg.outliers} outlier channels per tensor in fp32" if outliers else "")
    elif cfg.kernel == "nbits":
        q = nbits_quantize(model, 8, cfg.block_size, True, 4, keep)
        facts["activations"] = f"int8 per token and per block of {cfg.block_size} (dynamic)"
    else:
        q = dynamic_quantize(model, True, False, keep)
        facts["activations"] = "uint8 per tensor (dynamic)"
    facts["kept_fp32"] = len(keep)
    return q, facts


@register(Int8SmoothConfig, calibrates=True)
def build_int8_smooth(ctx, cfg: Int8SmoothConfig, tmp: Path):
    from l2v.quantize.onnx_methods import finish

    if ctx.streamed:
        from l2v.quantize import streamed

        return streamed.build_int8_smooth(ctx, cfg, tmp)
    q, facts = build_smoothed(ctx, cfg)
    return finish(q, tmp, cfg, "int8", **facts)
