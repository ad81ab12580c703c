"""Where the time goes, per op type (issue 17): ONNX Runtime and OpenVINO variants of one artifact profiled on
the same full-length batch, so an int8 variant's missing speed-up shows up as the op types that cost it.

    PYTHONPATH=. /work/venvs/ov/bin/python bench/op_profile.py ARTIFACT \
        [--engines ort/fp32,ort/int8-smooth,ov/ov-fp32,ov/ov-int8] [--batch 32] [--max-tokens 128] [--calls 3] \
        [--threads N] [--out bench/results/op_profile]

ORT: `enable_profiling` (per-node kernel time from the trace, the warm-up call left out). OpenVINO: the
infer request's `profiling_info` (real time per executed node; the CPU plugin fuses nodes, so its op types
are its own: FullyConnected, MatMul, ...). Per engine: ms per call per op type (int8 kernels marked), its share
of the summed node time, and the wall time per call. The profiling itself slows a call a little; compare
shares, and take speed from bench/cpu_engines.py. The load average is recorded before and after.
Output: OUT/op_profile.json, .md (one op-type x engine table) and .png (stacked bars).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cpu_engines import load_average, log, versions  # noqa: E402
from ov_int8_variants import speed_batch as full_batch  # noqa: E402  (rows of exactly max_tokens tokens)

INT8_ORT = {"MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear", "MatMulNBits",
            "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearMatMul"}


def ort_profile(path: Path, batch, calls: int, threads, variant=None) -> dict:
    """{op type: ms per call}, wall ms per call: kernel times of the `calls` runs after one warm-up."""
    from l2v.runtime.onnx import session

    sess = session(path, threads, profiling=True)
    feeds = {i.name: np.ascontiguousarray(batch[i.name]) for i in sess.get_inputs()}
    sess.run(None, feeds)
    walls = []
    for _ in range(calls):
        t = time.perf_counter()
        sess.run(None, feeds)
        walls.append(time.perf_counter() - t)
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")[1:]
    per_op = defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if any(a <= e["ts"] <= b for a, b in runs):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3 / calls
    return {"ops": dict(per_op), "wall_ms": 1e3 * float(np.median(walls)),
            "int8_ops": sorted(k for k in per_op if k in INT8_ORT)}


def ov_profile(path: Path, batch, calls: int, threads, variant=None) -> dict:
    """{node type [exec precision]: ms per call}, wall ms per call, from the request's profiling_info; compiled
    with the variant's recorded plugin properties (e.g. ov-bf16's bf16 precision), as l2v.load compiles it."""
    from l2v.runtime.openvino import compile_recorded, plugin_of

    compiled = compile_recorded(path, plugin_of(variant) if variant is not None else None, threads, profiling=True)
    req = compiled.create_infer_request()
    feeds = {i.get_any_name(): np.ascontiguousarray(batch[i.get_any_name()]) for i in compiled.inputs}
    req.infer(feeds)
    per_op, walls, int8 = defaultdict(float), [], set()
    for _ in range(calls):
        t = time.perf_counter()
        req.infer(feeds)
        walls.append(time.perf_counter() - t)
        for info in req.profiling_info:
            if info.status.name != "EXECUTED":
                continue
            key = info.node_type  # int8 compute: a FullyConnected / MatMul kernel on i8/u8 (not a u8 mask op)
            low = info.exec_type.lower()
            if key.startswith(("FullyConnected", "MatMul")) and ("i8" in low or "u8" in low):
                key = f"{key} (int8)"
                int8.add(key)
            per_op[key] += info.real_time.total_seconds() * 1e3 / calls
    return {"ops": dict(per_op), "wall_ms": 1e3 * float(np.median(walls)), "int8_ops": sorted(int8)}


def profile_engine(art, engine: str, batch, calls: int, threads) -> dict:
    from l2v.artifact.files import resolve

    backend, _, variant = engine.partition("/")
    if not variant:
        raise ValueError(f"engine {engine!r} is not BACKEND/VARIANT (e.g. ort/fp32, ov/ov-int8)")
    v = art.manifest.variants.get(variant)
    if v is None:
        return {"error": f"no variant {variant!r} in the artifact (has {', '.join(art.manifest.variants)})"}
    path = resolve(art.root, v.main.path)
    fn = {"ort": ort_profile, "ov": ov_profile}.get(backend)
    if fn is None:
        return {"error": f"unknown backend {backend!r} (ort or ov)"}
    r = fn(path, batch, calls, threads, v)
    total = sum(r["ops"].values())
    r["node_ms"] = total
    r["ops"] = dict(sorted(r["ops"].items(), key=lambda kv: -kv[1]))  # unrounded: the report rounds
    r["share"] = {k: v / total for k, v in r["ops"].items()}
    return r


def markdown(res: dict) -> str:
    m = res["meta"]
    lines = ["# Time per op type\n", f"Command: `{m['command']}`  ",
             f"Artifact: {m['artifact']}; batch {m['batch']} x {m['tokens']} tokens; {m['calls']} profiled calls after "
             f"one warm-up; {m['cpu']}, {m['cores']} cores; load average before {m['load_before']}, after "
             f"{m['load_after']}; {m['versions']}\n"]
    engines = [e for e, r in res["engines"].items() if "ops" in r]
    top = sorted({k for e in engines for k in list(res["engines"][e]["ops"])[:8]},
                 key=lambda k: -max(res["engines"][e]["ops"].get(k, 0) for e in engines))
    lines += ["ms per call (share of node time); int8 kernels marked.\n",
              "| op type | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for k in top:
        cells = []
        for e in engines:
            r = res["engines"][e]
            cells.append(f"{r['ops'][k]:.0f} ({100 * r['share'][k]:.0f} %)" if k in r["ops"] else "")
        lines.append(f"| {k}{' *' if any(k in res['engines'][e]['int8_ops'] for e in engines) else ''} | "
                     + " | ".join(cells) + " |")
    rest = [sum(v for k, v in res["engines"][e]["ops"].items() if k not in top) for e in engines]
    lines.append("| other | " + " | ".join(f"{x:.0f}" for x in rest) + " |")
    for label, key in (("**sum of node time**", "node_ms"), ("**wall per call**", "wall_ms")):
        lines.append(f"| {label} | " + " | ".join(f"{res['engines'][e][key]:.0f}" for e in engines) + " |")
    for e, r in res["engines"].items():
        if "error" in r:
            lines.append(f"\n{e}: {r['error']}")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = [e for e, r in res["engines"].items() if "ops" in r]
    kinds = sorted({k for e in engines for k in list(res["engines"][e]["ops"])[:6]})
    fig, ax = plt.subplots(figsize=(8, 5))
    bottom = np.zeros(len(engines))
    for k in kinds + ["other"]:
        vals = np.array([res["engines"][e]["ops"].get(k, 0) if k != "other" else
                         sum(v for kk, v in res["engines"][e]["ops"].items() if kk not in kinds) for e in engines])
        ax.bar(engines, vals, bottom=bottom, label=k)
        bottom += vals
    ax.set_ylabel(f"ms per call (batch {res['meta']['batch']} x {res['meta']['tokens']})")
    ax.set_title(f"time per op type (load {res['meta']['load_after']})")
    ax.legend(fontsize=7)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    from l2v.artifact import open_artifact
    from l2v.bench.env import cpu_name

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("artifact")
    p.add_argument("--engines", default="ort/fp32,ort/int8-smooth,ov/ov-fp32,ov/ov-int8")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(HERE / "results" / "op_profile"))
    args = p.parse_args(argv)
    art = open_artifact(args.artifact)
    batch = full_batch(art, args.batch, args.max_tokens)
    res = {"meta": {"command": " ".join([Path(sys.executable).name] + sys.argv), "artifact": str(args.artifact),
                    "batch": args.batch, "tokens": int(batch["input_ids"].shape[1]), "calls": args.calls,
                    "cpu": cpu_name(), "cores": os.cpu_count(), "load_before": load_average(),
                    "versions": versions()}, "engines": {}}
    for e in [x for x in args.engines.split(",") if x]:
        log(f"profiling {e}")
        res["engines"][e] = profile_engine(art, e, batch, args.calls, args.threads)
    res["meta"]["load_after"] = load_average()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "op_profile.json").write_text(json.dumps(res, indent=2))
    (out / "op_profile.md").write_text(markdown(res))
    plot(res, out / "op_profile.png")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
