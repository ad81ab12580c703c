"""`--quant auto`: the smallest/fastest int8 mix that holds the recall gate.

Decoder layers are ranked by measured sensitivity (see sensitivity.py); the search keeps the k most
sensitive layers in fp32 and grows k (0, step, 2*step, 4*step, ...) until recall@10 on the eval set
reaches the target, then bisects down to the smallest passing k. Every tried k is recorded.
"""
from __future__ import annotations

from pathlib import Path

from l2v.quantize.config import AutoConfig
from l2v.quantize.registry import register

DEFAULT_TARGET = 0.95


@register(AutoConfig, calibrates=True)
def build_auto(ctx, cfg: AutoConfig, tmp: Path) -> dict:
    from l2v.quantize.measure import OnnxRunner
    from l2v.quantize.onnx_methods import finish
    from l2v.quantize.smooth import build_smoothed

    gate = ctx.gate
    target = float(cfg.min_recall or ctx.min_recall or DEFAULT_TARGET)
    base = cfg.base()
    tried: dict[int, float] = {}
    built: dict[int, tuple] = {}

    def attempt(k: int) -> float:
        q, facts = build_smoothed(ctx, base, k)
        path = Path(tmp) / f".auto_k{k}.onnx"
        from l2v.quantize import graph

        graph.save(q, path)
        tried[k] = gate.recall(OnnxRunner(path, gate.output))["recall@10"]
        path.unlink()
        built[k] = (q, facts)
        ctx.progress(f"auto: {k} layer(s) in fp32 -> recall@10 {tried[k]:.4f} (target {target})")
        return tried[k]

    lo, k = -1, 0
    while attempt(k) < target and k < cfg.max_keep:
        lo, k = k, min(cfg.max_keep, max(cfg.step, 2 * k))
    hi = k
    while hi - lo > cfg.step and tried[hi] >= target:
        mid = (lo + hi) // 2
        if attempt(mid) >= target:
            hi = mid
        else:
            lo = mid
    best = min((kk for kk, r in tried.items() if r >= target), default=max(tried))
    q, facts = built[best]
    cfg_out = cfg.base(best, cfg.variant)
    return finish(q, tmp, cfg, "int8", **facts, target_recall=target, chosen_keep_sensitive=best,
                  search={str(kk): r for kk, r in sorted(tried.items())}, equivalent=cfg_out.to_dict())
