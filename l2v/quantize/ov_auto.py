"""`--quant ov-auto`: the fastest OpenVINO CPU variant that holds the recall gate.

Each candidate recipe (`OvAutoConfig.families`) is built with the ov-bf16 / ov-int8 handlers into a
directory of its own and measured by the gate; for the int8-weight recipes the k most sensitive decoder
layers stay unquantized, k searched like `auto` (`smallest_passing`). The passing candidates (each
recipe's smallest passing k) are timed at batch 32 on the gate's speed batch, interleaved in one process,
and the fastest one's files become the variant (of those within 5 % of the fastest, the most faithful);
every try, the timings and the equivalent ov-bf16 / ov-int8 spec go in its facts, so the choice can be
rebuilt by name.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from l2v.errors import InputError
from l2v.quantize.auto import DEFAULT_TARGET, best_keep, smallest_passing
from l2v.quantize.config import OvAutoConfig
from l2v.quantize.registry import Built, register

TIE = 0.05  # batch-32 times within 5 % of the fastest count as a tie (then the higher recall wins)


def _try(ctx, cfg: OvAutoConfig, family: str, k: int, work: Path) -> tuple[float, Built, Path]:
    """Build one candidate into its own directory and gate it: (recall@10, built, directory)."""
    from l2v.quantize.openvino_methods import build_ov_bf16, build_ov_int8

    candidate = cfg.candidate(family, k)
    where = work / f"{family}_k{k}"
    where.mkdir(parents=True)
    build = build_ov_bf16 if family == "bf16" else build_ov_int8
    built = build(ctx, candidate, where)
    backend = ctx.gate.backend(built, where)
    try:
        recall = ctx.gate.recall(backend)["recall@10"]
    finally:
        backend.close()
    kept = "" if family == "bf16" else f", {k} layer(s) unquantized"
    ctx.progress(f"ov-auto: {family}{kept} -> recall@10 {recall:.4f}")
    return recall, built, where


def _search(ctx, cfg: OvAutoConfig, family: str, target: float, work: Path,
            single: bool = False) -> tuple[dict[int, float], int, tuple]:
    """({k: recall@10} of every try, the recipe's best k, its (recall, built, dir)); only that candidate
    keeps its files. `single`: one try at k=0, no search."""
    tried: dict[int, tuple] = {}
    if family == "bf16" or single:  # nothing to keep back, or nothing to gain by keeping: one try
        tried[0] = _try(ctx, cfg, family, 0, work)
    else:
        def attempt(k: int) -> float:
            tried[k] = _try(ctx, cfg, family, k, work)
            return tried[k][0]

        smallest_passing(attempt, target, cfg.step, min(cfg.max_keep, ctx.artifact.manifest.model.num_layers))
    best = best_keep({k: c[0] for k, c in tried.items()}, target)
    for k, (_, _, where) in tried.items():
        if k != best:
            shutil.rmtree(where, ignore_errors=True)
    return {k: round(c[0], 4) for k, c in sorted(tried.items())}, best, tried[best]


def _timings(ctx, chosen: dict[str, tuple]) -> dict[str, float]:
    """Batch-32 ms of each candidate, interleaved in one process on the gate's speed batch."""
    from l2v.quantize.measure import speed

    runs = {}
    try:
        for family, (_, built, where) in chosen.items():
            runs[family] = ctx.gate.backend(built, where)
        b1, b32 = ctx.gate.speed_pair
        return {f: t["batch32_ms"] for f, t in speed(runs, b1, b32, min_seconds=1.0, max_reps=5).items()}
    finally:
        for r in runs.values():
            r.close()


def _pick(passing: dict[str, tuple], timing: dict[str, float]) -> str:
    """The fastest passing recipe; recipes within TIE of the fastest time count as equally fast (the
    timings are a few calls each), and of those the most faithful wins."""
    if not timing:
        return next(iter(passing))
    fastest = min(timing.values())
    close = [f for f in passing if timing[f] <= fastest * (1 + TIE)]
    return max(close, key=lambda f: passing[f][0])


def _families(cfg: OvAutoConfig) -> list[str]:
    """The recipes to try, in OV_FAMILIES order (bf16 first: it bounds w8-bf16), those this CPU runs."""
    from l2v.quantize.config import OV_FAMILIES
    from l2v.runtime.cpu import bf16_arithmetic

    families = [f for f in OV_FAMILIES if f in cfg.families and (f == "w8" or bf16_arithmetic())]
    if not families:
        raise InputError(f"ov-auto: families={'+'.join(cfg.families)} all run bf16 float ops, and this CPU has no "
                         "bf16 arithmetic (AVX512-BF16 or AMX)", hint="add w8: ov-auto:families=w8")
    return families


@register(OvAutoConfig, kind="openvino", calibrates=True)
def build_ov_auto(ctx, cfg: OvAutoConfig, tmp: Path) -> Built:
    target = float(cfg.min_recall or ctx.min_recall or DEFAULT_TARGET)
    families = _families(cfg)
    skipped = [f for f in cfg.families if f not in families]
    if skipped:
        ctx.progress(f"ov-auto: skipping {'+'.join(skipped)} (no bf16 arithmetic on this CPU)")
    work = Path(tmp) / ".ov_auto"
    search, best = {}, {}
    try:
        for family in families:
            # w8-bf16's kept layers still run bf16 float ops, so bf16's recall bounds it: when bf16 failed,
            # keeping layers cannot reach the target (Qwen2.5-Coder-0.5B: bf16 0.9496, w8-bf16 with 0..24 of
            # its 24 layers kept 0.9392..0.9493), and it gets one try
            bounded = family == "w8-bf16" and "bf16" in best and best["bf16"][1][0] < target
            search[family], k, candidate = _search(ctx, cfg, family, target, work, single=bounded)
            best[family] = (k, candidate)
        passing = {f: c for f, (_, c) in best.items() if c[0] >= target}
        timing = _timings(ctx, passing) if len(passing) > 1 else {}
        if passing:
            family = _pick(passing, timing)
        else:  # the most faithful: a --min-recall gate then refuses it
            family = max(best, key=lambda f: best[f][1][0])
        k, (_, built, where) = best[family]
        for record in built.variant.files:
            os.replace(where / record.path, Path(tmp) / record.path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    built.variant.facts.update(
        target_recall=target, chosen_family=family, chosen_keep_sensitive=None if family == "bf16" else k,
        equivalent={**cfg.candidate(family, k).to_dict(), "name": None},
        search={f: {str(n): r for n, r in tries.items()} for f, tries in search.items()},
        skipped_families=skipped or None, candidates_batch32_ms=timing or None)
    return built
