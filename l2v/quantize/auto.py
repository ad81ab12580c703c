"""`--quant auto`: the fastest int8 mix that holds the recall gate.

For each int8 kernel in `kernels` (per-token W8A8 with outlier channels, and MatMulNBits' W8A8 per
block), decoder layers are ranked by measured sensitivity with that kernel's arithmetic (see
sensitivity.py) and the search keeps the k most sensitive in fp32, growing k (0, step, 2*step,
4*step, ...) until recall@10 on the eval set reaches the target, then bisecting down to the smallest
passing k. When several kernels pass, the one with the lowest batch-32 time on the gate's speed batch
wins (timed interleaved in one process). Every tried (kernel, k), its recall, and the timings go in the
manifest.
"""
from __future__ import annotations

from pathlib import Path

from l2v.quantize.config import AutoConfig
from l2v.quantize.registry import register

DEFAULT_TARGET = 0.95


def _search(ctx, cfg: AutoConfig, kernel: str, target: float, tmp: Path) -> dict[int, tuple[float, Path, dict]]:
    """{k: (recall@10, saved graph, facts)} for every k tried with one kernel."""
    from l2v.quantize import graph
    from l2v.quantize.smooth import build_smoothed

    tried: dict[int, tuple[float, Path, dict]] = {}

    def attempt(k: int) -> float:
        q, facts = build_smoothed(ctx, cfg.base(0, kernel=kernel), k)
        path = Path(tmp) / f".auto_{kernel}_k{k}.onnx"
        graph.save(q, path)
        del q  # one graph in memory at a time (Qwen-0.5B int8: 1.1 GB each)
        with ctx.gate.graph_backend(path) as backend:
            tried[k] = (ctx.gate.recall(backend)["recall@10"], path, facts)
        ctx.progress(f"auto: kernel={kernel}, {k} layer(s) in fp32 -> recall@10 {tried[k][0]:.4f} (target {target})")
        return tried[k][0]

    smallest_passing(attempt, target, cfg.step, cfg.max_keep)
    return tried


def smallest_passing(attempt, target: float, step: int, max_keep: int) -> None:
    """Call `attempt(k)` (-> recall@10 with k units kept) for k = 0, step, 2*step, 4*step, ... until one
    reaches `target` (or k reaches max_keep), then bisect down to within `step` of the smallest passing k.
    The caller records what each attempt gave."""
    results: dict[int, float] = {}

    def run(k: int) -> float:
        results[k] = attempt(k)
        return results[k]

    lo, k = -1, 0
    while run(k) < target and k < max_keep:
        lo, k = k, min(max_keep, max(step, 2 * k))
    hi = k
    while hi - lo > step and results[hi] >= target:
        mid = (lo + hi) // 2
        if run(mid) >= target:
            hi = mid
        else:
            lo = mid


def best_keep(recalls: dict[int, float], target: float) -> int:
    """Of the k tried ({k: recall@10}), the smallest that reaches `target`, else the most faithful."""
    passing = [k for k, r in recalls.items() if r >= target]
    return min(passing) if passing else max(recalls, key=recalls.get)


def _fastest(ctx, paths: dict[str, Path]) -> dict[str, float]:
    """Batch-32 ms of each candidate graph, interleaved in one process (the gate's speed batch)."""
    from l2v.quantize.measure import speed, speed_batches

    runs = {name: ctx.gate.graph_backend(p) for name, p in paths.items()}
    b1, b32 = speed_batches(ctx, ctx.gate.texts, ctx.gate.speed_tokens)
    try:
        return {name: t["batch32_ms"] for name, t in speed(runs, b1, b32, min_seconds=1.0, max_reps=5).items()}
    finally:
        for r in runs.values():
            r.close()


def _choose(ctx, tried: dict, target: float) -> tuple[str, int, dict]:
    """(kernel, k, batch-32 times): each kernel's smallest passing k, the fastest of those; if none
    passes, the most faithful graph tried (a --min-recall gate then refuses it)."""
    passing = {kn: best_keep({k: c[0] for k, c in t.items()}, target)
               for kn, t in tried.items() if any(c[0] >= target for c in t.values())}
    if not passing:
        kernel, best = max(((kn, k) for kn, t in tried.items() for k in t), key=lambda c: tried[c[0]][c[1]][0])
        return kernel, best, {}
    timing = _fastest(ctx, {kn: tried[kn][k][1] for kn, k in passing.items()}) if len(passing) > 1 else {}
    kernel = min(timing, key=timing.get) if timing else next(iter(passing))
    return kernel, passing[kernel], timing


@register(AutoConfig, calibrates=True)
def build_auto(ctx, cfg: AutoConfig, tmp: Path):
    from l2v.quantize import graph
    from l2v.quantize.onnx_methods import finish

    target = float(cfg.min_recall or ctx.min_recall or DEFAULT_TARGET)
    tried: dict = {}
    try:
        for kernel in cfg.kernels:
            tried[kernel] = _search(ctx, cfg, kernel, target, tmp)
        kernel, best, timing = _choose(ctx, tried, target)
        q = graph.load(tried[kernel][best][1])
    finally:
        for t in tried.values():
            for _, path, _ in t.values():
                path.unlink(missing_ok=True)
    facts = tried[kernel][best][2]
    return finish(q, tmp, cfg, "int8", **facts, target_recall=target, chosen_kernel=kernel,
                  chosen_keep_sensitive=best, equivalent=cfg.base(best, cfg.variant, kernel=kernel).to_dict(),
                  search={kn: {str(k): c[0] for k, c in sorted(t.items())} for kn, t in tried.items()},
                  candidates_batch32_ms=timing or None)
