"""Quantization evidence: every method on one artifact, measured in ONE run on this machine.

    python bench/quantize_report.py ARTIFACT --data-dir /work/assets/data --max-tokens 32 \
        --out bench/results/quant_smollm2

Adds the variants to ARTIFACT (built-in calibration/eval texts, no gate), then on the BBC News corpus
(every document, truncated to --max-tokens tokens; neighbours over the whole corpus) measures each
variant against ORT fp32: mean/min cosine, recall@1/@10 of nearest neighbours, size on disk, and
median time per call at batch 1 and batch 32 with all runners interleaved rep by rep (ratios to ORT
fp32 and to PyTorch fp32 are what to trust on a shared machine). Writes OUT.json, OUT.md, OUT.png.

trt-* variants (kind trt, `--quant trt-int8` ...) are measured like the others: their graph on ONNX
Runtime (Q/DQ int8/fp8 as TensorRT computes it, bf16 simulated); their time is ONNX Runtime's, not
TensorRT's. `--no-speed` opens one runner at a time and times nothing (memory: one model at a time; the
fp32 reference vectors are cached in OUT_ref_<docs>_<tokens>.npy, so an interrupted run resumes).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT = ["int8-dynamic", "int8-smooth", "int8-smooth:name=int8-smooth-k0,keep_sensitive=0",
           "int8-smooth:name=smoothquant,smoothing=true,outlier_channels=0", "w8", "w4", "auto", "fp16", "bf16"]
GATE_ONLY = ["fp16", "bf16"]  # on ORT's CPU provider these are slow/fp32-speed: timed, but not run over the corpus


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("artifact")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--docs", type=int, default=None, help="stratified sample (default: all 2,225)")
    p.add_argument("--quant", action="append", default=None)
    p.add_argument("--speed-reps", type=int, default=5)
    p.add_argument("--gate-only", action="append", default=None,
                   help=f"variant timed and reported with its built-in-eval gate figures, not run over the corpus "
                        f"(repeatable; default {', '.join(GATE_ONLY)}): for CPU budgets")
    p.add_argument("--no-speed", action="store_true",
                   help="recall only: one runner in memory at a time, no timing (rows resume from OUT.json)")
    p.add_argument("--out", default="bench/results/quant_smollm2")
    args = p.parse_args(argv)
    if args.no_speed:
        return recall_only(args)

    from l2v.artifact import open_artifact
    from l2v.eval.corpora import load_bbc
    from l2v.quantize import quantize_artifact
    from l2v.quantize.context import Context
    from l2v.quantize.measure import embed, fidelity, speed
    from l2v.runtime.backend import RunOptions, open_backend

    root = Path(args.artifact).resolve()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    quant = args.quant or DEFAULT
    gate_only = args.gate_only or GATE_ONLY
    t0 = time.perf_counter()
    log = lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}", file=sys.stderr, flush=True)  # noqa: E731

    built = {}
    for spec in quant:
        name = spec.split(":")[0] if "name=" not in spec else spec.split("name=")[1].split(",")[0]
        if name in open_artifact(root).manifest.variants:
            log(f"{name}: already in the artifact")
            continue
        t = time.perf_counter()
        quantize_artifact(root, [spec], speed=False, progress=True)
        built[name] = round(time.perf_counter() - t, 1)
        log(f"{name}: built and gated in {built[name]}s")
    art = open_artifact(root)
    manifest = art.manifest

    corpus = load_bbc(args.data_dir)
    if args.docs:
        corpus = corpus.sample(args.docs)
    ctx = Context(art, [])
    batches = ctx.batches(corpus.texts, args.max_tokens, batch=32)
    quiet = RunOptions(spinning=False)
    runners = {"fp32": open_backend(art, "fp32", quiet)}
    onnx = manifest.variants_of("onnx", "trt")
    names = [n for n in onnx if n not in ("fp32", *gate_only)]
    runners["torch-fp32"] = open_backend(art, "torch", quiet)
    for n in names + [g for g in gate_only if g in onnx]:
        runners[n] = open_backend(art, n, quiet)

    rows = {}
    log(f"embedding {len(corpus)} BBC documents (<= {args.max_tokens} tokens) with fp32")
    t = time.perf_counter()
    ref = embed(runners["fp32"], batches)
    rows["fp32"] = {"corpus_seconds": round(time.perf_counter() - t, 1), **fidelity(ref, ref)}
    for n in names:
        t = time.perf_counter()
        got = embed(runners[n], batches)
        rows[n] = {"corpus_seconds": round(time.perf_counter() - t, 1), **fidelity(ref, got)}
        log(f"{n}: {rows[n]}")
        _save(out, args, corpus, rows, manifest, built, None, gate_only)

    b32 = batches[len(batches) // 2].rows(slice(0, 32))
    b1 = b32.rows(slice(0, 1))
    log("timing batch 1 and batch 32, all runners interleaved")
    timing = speed(runners, b1, b32, min_seconds=60.0, max_reps=args.speed_reps)
    rows["torch-fp32"] = {"note": "PyTorch fp32 of the same artifact (timed only)"}
    for g in gate_only:  # gate figures (built-in eval set) for the variants not run over the corpus
        if g in manifest.variants:
            gt = manifest.variants[g].gate
            rows[g] = {"corpus_seconds": None, "note": "built-in eval set, not BBC",
                       **{k: gt[k] for k in ("eval_texts", "mean_cosine", "min_cosine", "recall@1", "recall@10")}}
    _save(out, args, corpus, rows, manifest, built, timing, gate_only)
    log(f"wrote {out}.json, {out}.md, {out}.png")
    return 0


def _save(out: Path, args, corpus, rows: dict, manifest, built: dict, timing: dict | None,
          gate_only: list) -> None:
    root = Path(args.artifact)
    table = []
    base_t = timing["fp32"] if timing else None
    torch_t = timing.get("torch-fp32") if timing else None
    for n, r in rows.items():
        v = manifest.variants.get(n)
        size = sum(f.size or (root / f.path).stat().st_size for f in v.files) if v else None
        row = {"variant": n, "method": ((v.quant if v else None) or {}).get("method", n),
               "size_mb": round(size / 1e6, 1) if size else None, **r}
        if v:
            row["compute"] = _compute(v)
            row["quant_ops"] = v.facts.get("quant_ops")
            row["kept_fp32"] = v.facts.get("kept_fp32")
            row["builtin_eval_recall@10"] = (v.gate or {}).get("recall@10")
            if v.kind == "trt":  # node counts: exported fp32 graph -> simplified -> the variant's graph
                row["nodes"] = {k: v.facts.get(k) for k in ("nodes_exported", "nodes_simplified", "nodes")}
                row["kept_units"] = v.facts.get("chosen_keep_units")
        if timing and n in timing:
            t = timing[n]
            row.update(batch1_ms=t["batch1_ms"], batch32_ms=t["batch32_ms"],
                       x_ort_b1=round(base_t["batch1_ms"] / t["batch1_ms"], 2),
                       x_ort_b32=round(base_t["batch32_ms"] / t["batch32_ms"], 2),
                       x_torch_b1=round(torch_t["batch1_ms"] / t["batch1_ms"], 2),
                       x_torch_b32=round(torch_t["batch32_ms"] / t["batch32_ms"], 2))
        table.append(row)
    meta = {"artifact": str(root), "source": manifest.source.get("name"), "corpus": "bbc",
            "documents": len(corpus), "max_tokens": args.max_tokens, "batch_speed_tokens": args.max_tokens,
            "machine": f"{platform.processor() or platform.machine()}, shared CPU", "build_seconds": built,
            "note": "all figures from one run; speed = median ms per call, runners interleaved rep by rep"}
    if getattr(args, "no_speed", False):
        meta.pop("batch_speed_tokens")
        meta["note"] = "recall-only run (--no-speed): one runner at a time, nothing timed"
    Path(f"{out}.json").write_text(json.dumps({"meta": meta, "rows": table}, indent=2) + "\n")
    cols = ["variant", "compute", "size_mb", "batch1_ms", "batch32_ms", "x_ort_b1", "x_ort_b32", "x_torch_b1", "x_torch_b32",
            "mean_cosine", "min_cosine", "recall@1", "recall@10"]
    if getattr(args, "no_speed", False):
        cols = ["variant", "compute", "size_mb", "mean_cosine", "min_cosine", "recall@1", "recall@10",
                "builtin_eval_recall@10", "corpus_seconds"]
    lines = [f"BBC News, {len(corpus)} documents truncated to {args.max_tokens} tokens, neighbours over the whole "
             "corpus; reference = ORT fp32 of the same artifact.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table:
        lines.append("| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in cols) + " |")
    shown = ", ".join(g for g in gate_only if g in rows)
    trt = [r["variant"] for r in table if r["variant"].startswith("trt-")]
    lines += [""] + ([f"{', '.join(trt)}: TensorRT-ready graphs run on ONNX Runtime's CPU provider (Q/DQ arithmetic "
                      "as TensorRT computes it; bf16 simulated); their time is ONNX Runtime's, not TensorRT's."]
                     if trt else [])
    lines += [f"{r['variant']}: graph nodes {r['nodes']['nodes_exported']} exported -> {r['nodes']['nodes_simplified']} "
              f"simplified -> {r['nodes']['nodes']} in the variant (casts, Q/DQ, outlier side GEMMs)"
              + (f"; {r['kept_units']} projection group(s) kept in fp16" if r.get("kept_units") is not None else "")
              for r in table if r.get("nodes")]
    if getattr(args, "no_speed", False):
        lines += ["corpus_seconds: ONNX Runtime CPU time for the corpus on a shared machine (under load), "
                  "builtin_eval_recall@10: the recall gate's figure on the built-in eval set."]
    else:
        lines += [(f"{shown}: cosine/recall on the built-in eval set (stdlib docstrings), not BBC; " if shown else "")
                  + "torch-fp32: timing only. Speed ratios x_ort/x_torch = fp32 time / variant time, measured in "
                  "this run with all runners interleaved."]
    Path(f"{out}.md").write_text("\n".join(lines) + "\n")
    if timing:
        _plot(out, table)


def recall_only(args) -> int:
    """Build the variants, then embed the corpus with fp32 and each variant in turn (one in memory)."""
    import numpy as np

    from l2v.artifact import open_artifact
    from l2v.eval.corpora import load_bbc
    from l2v.quantize import quantize_artifact
    from l2v.quantize.context import Context
    from l2v.quantize.measure import embed, fidelity
    from l2v.runtime.backend import RunOptions, open_backend

    root, out = Path(args.artifact).resolve(), Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log = lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}", file=sys.stderr, flush=True)  # noqa: E731
    built = {}
    for spec in args.quant or DEFAULT:
        name = spec.split(":")[0] if "name=" not in spec else spec.split("name=")[1].split(",")[0]
        if name not in open_artifact(root).manifest.variants:
            t = time.perf_counter()
            quantize_artifact(root, [spec], speed=False, progress=True)
            built[name] = round(time.perf_counter() - t, 1)
            log(f"{name}: built and gated in {built[name]}s")
    art = open_artifact(root)
    manifest = art.manifest
    corpus = load_bbc(args.data_dir)
    if args.docs:
        corpus = corpus.sample(args.docs)
    batches = Context(art, []).batches(corpus.texts, args.max_tokens, batch=32)
    quiet = RunOptions(spinning=False)
    prev = json.loads(Path(f"{out}.json").read_text()) if Path(f"{out}.json").exists() else {}
    rows = {r["variant"]: {k: v for k, v in r.items() if k in ("corpus_seconds", "eval_texts", "mean_cosine",
                                                                  "min_cosine", "recall@1", "recall@10")}
            for r in prev.get("rows", []) if r.get("recall@10") is not None
            and prev.get("meta", {}).get("documents") == len(corpus) and prev["meta"].get("max_tokens") == args.max_tokens}
    ref_path = Path(f"{out}_ref_{len(corpus)}_{args.max_tokens}.npy")
    if ref_path.exists():
        ref = np.load(ref_path)
    else:
        log(f"embedding {len(corpus)} BBC documents (<= {args.max_tokens} tokens) with fp32")
        t = time.perf_counter()
        with open_backend(art, "fp32", quiet) as b:
            ref = embed(b, batches)
        np.save(ref_path, ref)
        rows["fp32"] = {"corpus_seconds": round(time.perf_counter() - t, 1), **fidelity(ref, ref)}
    wanted = [n for n in manifest.variants_of("onnx", "trt") if n != "fp32"]
    for n in wanted:
        if n in rows:
            continue
        t = time.perf_counter()
        with open_backend(art, n, quiet) as b:
            got = embed(b, batches)
        rows[n] = {"corpus_seconds": round(time.perf_counter() - t, 1), **fidelity(ref, got)}
        log(f"{n}: {rows[n]}")
        _save(out, args, corpus, rows, manifest, built, None, [])
    _save(out, args, corpus, rows, manifest, built, None, [])
    _plot_recall_size(out, json.loads(Path(f"{out}.json").read_text())["rows"])
    log(f"wrote {out}.json, {out}.md, {out}.png")
    return 0


def _plot_recall_size(out: Path, table: list) -> None:
    _scatter(out, table, "size_mb", "size on disk (MB)",
             "Variants: fidelity vs size (squares: trt-* graphs on ONNX Runtime)",
             size=lambda r: 40, marker=lambda r: "s" if r["variant"].startswith("trt-") else "o")


def _compute(variant) -> str:
    """What the variant multiplies with (weights x activations), from its manifest entry."""
    q, entry = variant.quant or {}, variant.facts
    method = q.get("method")
    if method is None:
        return "fp32"
    if variant.kind == "trt":
        p = variant.dtype
        if p in ("int8", "fp8"):
            kept = entry.get("chosen_keep_units") or 0
            return (f"{p} w/channel x {p} a/tensor (static), fp16 rest" + (" + fp16 outlier ch." if
                    (entry.get("outlier_channels") or {}).get("tensors") else "") + (f", {kept} units fp16" if kept else ""))
        return f"{p}, fp32 norms/softmax/pooling" + (" (bf16 simulated)" if p == "bf16" else "")
    if method in ("fp16", "bf16"):
        return "fp16" if method == "fp16" else "fp32 (bf16 storage)"
    if method == "int8-dynamic":
        return "int8 w x uint8 a/tensor"
    if method in ("w8", "w4"):
        mix = f" (+{entry['kept_8bit']} 8-bit)" if entry.get("kept_8bit") else ""
        act = "int8 a/token+block" if q.get("accuracy_level") == 4 else "fp32 a"
        return f"int{q['bits']} w{mix} x {act}"
    kernel = (entry.get("equivalent") or q).get("kernel", "token")
    act = {"token": "int8 a/token", "nbits": "int8 a/token+block", "integer": "uint8 a/tensor"}[kernel]
    return f"int8 w x {act}" + (" + fp32 outlier ch." if entry.get("outlier_channels") else "")


def _plot(out: Path, table: list) -> None:
    _scatter(out, table, "x_ort_b32", "speed-up vs ORT fp32 at batch 32 (same run)",
             "Quantized variants: fidelity vs speed (marker area ~ size on disk)",
             size=lambda r: max(20, (r.get("size_mb") or 550) / 3), marker=lambda r: "o", vline=1.0)


def _scatter(out: Path, table: list, x: str, xlabel: str, title: str, size, marker, vline=None) -> None:
    """recall@10 against column `x`, one labelled point per variant, the 0.95 target line; OUT.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in table:
        if r.get(x) is None or r.get("recall@10") is None:
            continue
        ax.scatter(r[x], r["recall@10"], marker=marker(r), s=size(r), alpha=0.6)
        ax.annotate(r["variant"], (r[x], r["recall@10"]), fontsize=8, xytext=(4, 2), textcoords="offset points")
    ax.axhline(0.95, ls="--", lw=0.8, color="grey")
    if vline is not None:
        ax.axvline(vline, ls=":", lw=0.8, color="grey")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("recall@10 vs fp32 neighbours (BBC)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(f"{out}.png", dpi=120)


if __name__ == "__main__":
    sys.exit(main())
