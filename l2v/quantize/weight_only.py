"""w8 / w4: MatMulNBits weight-only quantization (RTN, HQQ, or AWQ-style activation-aware scaling)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from l2v.numerics import fake_quant_blocks
from l2v.quantize import graph
from l2v.quantize.config import W4Config, W8Config, WeightOnlyConfig
from l2v.quantize.registry import register

AWQ_SAMPLES = 512


def fake_quant(w: np.ndarray, bits: int, block: int, symmetric: bool = True) -> np.ndarray:
    """Quantise-dequantise B [K, N] in blocks of `block` input channels (round to nearest, as MatMulNBits' RTN)."""
    return fake_quant_blocks(w, block, bits, axis=0, symmetric=symmetric)


def awq_scales(x: np.ndarray, mean_abs: np.ndarray, w: np.ndarray, bits: int, block: int, symmetric: bool,
               grid: int) -> tuple[np.ndarray, float]:
    """AWQ: s = mean|x|^a (a on a grid in [0, 1]) minimising ||x (Q(s W) / s) - x W||^2 on calibration rows."""
    ref = x @ w
    best, best_s, best_a = np.inf, np.ones_like(mean_abs), 0.0
    for a in np.linspace(0.0, 1.0, grid):
        s = np.power(np.maximum(mean_abs, 1e-6), a)
        s = s / np.sqrt(s.max() * s.min())
        wq = fake_quant(w * s[:, None], bits, block, symmetric) / s[:, None]
        err = float(np.mean((x @ wq - ref) ** 2))
        if err < best:
            best, best_s, best_a = err, s, float(a)
    return best_s.astype(np.float32), best_a


def apply_awq(model, stats: dict, cfg: WeightOnlyConfig) -> dict:
    """Search and fold AWQ scales for every group whose scale can be folded (see smooth.foldable_groups)."""
    from l2v.quantize.smooth import foldable_groups

    chosen = {}
    for consumers, _ in foldable_groups(model, stats, include_down=True):
        name = graph.module_name(consumers[0])
        x = stats[name]["samples"].astype(np.float32)
        w = np.concatenate([graph.weight_of(model, c) for c in consumers], axis=1).astype(np.float32)
        s, a = awq_scales(x, stats[name]["mean_abs"], w, cfg.bits, cfg.block_size, cfg.symmetric, cfg.awq_grid)
        graph.fold_input_scale(model, consumers, s)
        for c in consumers:
            chosen[graph.module_name(c)] = round(a, 2)
    return chosen


@register(W8Config, calibrates=True)
@register(W4Config, calibrates=True)
def build_weight_only(ctx, cfg: WeightOnlyConfig, tmp: Path):
    from l2v.quantize.onnx_methods import finish, nbits_quantize
    from l2v.quantize.smooth import check_fold

    if ctx.streamed:
        from l2v.quantize import streamed

        return streamed.build_weight_only(ctx, cfg, tmp)
    model = graph.load(ctx.source_path)
    facts = {}
    if cfg.algorithm == "awq":
        stats = ctx.act_stats(cfg.calib_texts, cfg.calib_max_length, keep_samples=AWQ_SAMPLES)
        alphas = apply_awq(model, stats, cfg)
        facts["awq_scaled_matmuls"] = len(alphas)
        facts["awq_mean_alpha"] = round(float(np.mean(list(alphas.values()))), 3) if alphas else None
        facts["fold_min_cosine"] = round(check_fold(graph.load(ctx.source_path), model, ctx, cfg.method), 7)
    keep = graph.node_names(model, cfg.keep_fp32)
    eight = [n for n in graph.node_names(model, cfg.keep_8bit) if n not in keep]
    q = nbits_quantize(model, cfg.bits, cfg.block_size, cfg.symmetric, cfg.accuracy_level, keep + eight,
                       "hqq" if cfg.algorithm == "hqq" else "rtn")
    if eight:  # the second pass sees only the MatMuls the first one left: `eight` and `keep`
        q = nbits_quantize(q, 8, cfg.block_size, cfg.symmetric, cfg.accuracy_level, keep, "rtn")
        facts["kept_8bit"] = len(eight)
    act = "int8 per token and block (dynamic)" if cfg.accuracy_level == 4 else "fp32"
    return finish(q, tmp, cfg, f"int{cfg.bits}-weights", activations=act, kept_fp32=len(keep), **facts)
