"""Quantized variants of a streamed 7-8B artifact on this CPU: the layer-streamed quantization's peak RSS,
each variant's size, load RSS and one latency figure.

    python bench/big_quant.py ARTIFACT --quant w8 --quant w4 [--eval-texts 16] [--name big_quant]

1. `quantize` (a fresh child): `l2v.quantize_artifact(ARTIFACT, methods, eval=<the first N built-in eval
   texts>, eval_max_length=64, speed=False)`: the real gate (every graph in ONNX Runtime's low-memory
   session, one at a time), on few texts because one pass of an 8B graph over them takes minutes on 2
   cores. Its recall on N texts is a smoke figure (and the synthetic checkpoints have random weights);
   peak RSS (VmHWM) is the point.
2. `probe` (one fresh child per variant): `l2v.load(ARTIFACT, variant=V)` -> seconds, RSS after load
   (anonymous / file-backed), then `encode` of one ~32-token text `--calls` times: median seconds, peak RSS.
Writes bench/results/NAME.{json,md}. RSS and sizes do not depend on load; seconds do (the load is saved).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
GiB = 2 ** 30
TEXT = ("The committee met on Tuesday to review the budget for the new library, and agreed to publish the "
        "figures before the end of the month.")


def _gib(n: int) -> float:
    return round(n / GiB, 3)


def quantize(args) -> dict:
    from l2v.quantize.api import quantize_artifact
    from l2v.quantize.texts import default_eval_texts
    from l2v.resources import process_memory

    t0 = time.perf_counter()
    quantize_artifact(args.artifact, args.quant, eval=default_eval_texts()[:args.eval_texts],
                          eval_max_length=64, speed=False, progress=True, overwrite=True)
    m = json.loads((Path(args.artifact) / "l2v.json").read_text())
    gate = {k: {g: m["variants"][k]["gate"].get(g) for g in ("recall@10", "mean_cosine", "min_cosine", "session",
                                                              "size_bytes", "reference_size_bytes")}
            for k in (q.split(":")[0] for q in args.quant)}
    return {"step": "quantize", "methods": args.quant, "eval_texts": args.eval_texts, "seconds":
            round(time.perf_counter() - t0, 1), "peak_rss_gib": _gib(process_memory()["peak"]), "gate": gate,
            "loadavg": round(os.getloadavg()[0], 1)}


def probe(args) -> dict:
    import l2v
    from l2v.resources import process_memory

    t0 = time.perf_counter()
    enc = l2v.load(args.artifact, variant=args.variant)
    load_s = time.perf_counter() - t0
    after = process_memory()
    times = []
    for _ in range(args.calls):
        t = time.perf_counter()
        vec = enc.encode([TEXT])
        times.append(time.perf_counter() - t)
    end = process_memory()
    v = enc.artifact.manifest.variants[args.variant]
    size = sum(f.size or 0 for f in v.files)
    return {"step": "probe", "variant": args.variant, "size_gb": round(size / 1e9, 3), "load_s": round(load_s, 1),
            "low_memory_session": bool(getattr(enc.backend, "low_memory", False)),
            "rss_after_load_gib": _gib(after["rss"]), "anon_after_load_gib": _gib(after["anon"]),
            "file_after_load_gib": _gib(after["file"]), "tokens": int(len(enc.preprocessor.tokenizer(TEXT)
                                                                             ["input_ids"])),
            "encode_s_median": round(statistics.median(times), 2), "encode_s": [round(t, 2) for t in times],
            "peak_rss_gib": _gib(end["peak"]), "dim": int(vec.shape[1]), "loadavg": round(os.getloadavg()[0], 1)}


def _child(argv: list[str]) -> dict:
    res = subprocess.run([sys.executable, __file__, *argv], stdout=subprocess.PIPE, text=True)
    if res.returncode:
        return {"step": argv[0], "argv": argv, "rc": res.returncode}
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(args) -> None:
    rows = []
    if args.quant:
        rows.append(_child(["quantize", args.artifact, *[a for q in args.quant for a in ("--quant", q)],
                            "--eval-texts", str(args.eval_texts)]))
        save(rows, args.name)
    m = json.loads((Path(args.artifact) / "l2v.json").read_text())
    for v in args.variants or list(m["variants"]):
        if m["variants"][v]["kind"] in ("torch",):
            continue
        rows.append(_child(["probe", args.artifact, "--variant", v, "--calls", str(args.calls)]))
        save(rows, args.name)


def save(rows: list, name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1))
    lines = ["| step | variant | size GB | load s | RSS after load GiB (anon / file) | encode 1 text s (median) | "
             "peak RSS GiB | low-memory session | load avg |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "rc" in r:
            lines.append(f"| {r['step']} | failed rc={r['rc']} | | | | | | | |")
        elif r["step"] == "quantize":
            g = "; ".join(f"{k}: recall@10 {v['recall@10']}, mean cos {v['mean_cosine']}" for k, v in r["gate"].items())
            lines.append(f"| quantize {', '.join(r['methods'])} ({r['eval_texts']} eval texts; {g}) | | | "
                         f"{r['seconds']} | | | **{r['peak_rss_gib']}** | yes | {r['loadavg']} |")
        else:
            lines.append(f"| probe | {r['variant']} | {r['size_gb']} | {r['load_s']} | {r['rss_after_load_gib']} "
                         f"({r['anon_after_load_gib']} / {r['file_after_load_gib']}) | {r['encode_s_median']} "
                         f"({r['tokens']} tokens) | **{r['peak_rss_gib']}** | {r['low_memory_session']} | "
                         f"{r['loadavg']} |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("artifact")
    r.add_argument("--quant", action="append", default=[], help="methods to add first (w8, w4, ...)")
    r.add_argument("--variants", nargs="*", help="variants to probe (default: every graph variant)")
    r.add_argument("--name", default="big_quant")
    q = sub.add_parser("quantize")
    q.add_argument("artifact")
    q.add_argument("--quant", action="append", required=True)
    p = sub.add_parser("probe")
    p.add_argument("artifact")
    p.add_argument("--variant", required=True)
    for s in (r, q):
        s.add_argument("--eval-texts", type=int, default=16)
    for s in (r, p):
        s.add_argument("--calls", type=int, default=3)
    args = ap.parse_args(argv)
    rec = {"run": run, "quantize": quantize, "probe": probe}[args.cmd](args)
    if rec is not None:
        print(json.dumps(rec))


if __name__ == "__main__":
    main()
