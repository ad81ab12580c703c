"""The TensorRT build plans `l2v-export --trt` writes for the Llama-3-8B shape (LLM2Vec
Meta-Llama-3-8B-Instruct: hidden 4096, 32 layers, 32 heads / 8 kv heads, intermediate 14336, vocab 128256),
max_length 512, with weight-size estimates per precision. No weights and no graph are needed: an 8B
graph is > 2 GiB, so it carries external data (the plan says so; TensorRT builds it with
`parse_from_file`). The plans come from the same `make_plan` / `policy` the trt-* handlers call.

    python bench/trt_plan_llama3_8b.py [--out bench/results/trt_plan_llama3_8b]

Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPE = {"hidden": 4096, "layers": 32, "heads": 32, "kv_heads": 8, "intermediate": 14336, "vocab": 128256,
         "max_length": 512}
PROFILES = "batch=1:16:64,seq=1:128:512;batch=1:1:1,seq=1:64:512"  # throughput + latency (one context each)
WORKSPACE = 8 << 30
OUTLIER_CHANNELS = 32


def sizes(s: dict) -> dict:
    h, kv = s["hidden"], s["kv_heads"] * (s["hidden"] // s["heads"])
    outs = {"q": h, "k": kv, "v": kv, "o": h, "gate": s["intermediate"], "up": s["intermediate"], "down": h}
    ins = {"q": h, "k": h, "v": h, "o": h, "gate": h, "up": h, "down": s["intermediate"]}
    proj = s["layers"] * sum(ins[k] * outs[k] for k in outs)
    emb = s["vocab"] * h
    norms = s["layers"] * 2 * h + h
    side = s["layers"] * OUTLIER_CHANNELS * sum(outs.values())  # fp16 outlier-channel side GEMM weights
    return {"params": proj + emb + norms, "projection_params": proj, "embedding_params": emb,
            "weight_bytes": {"fp16": 2 * (proj + emb) + 4 * norms, "bf16": 2 * (proj + emb) + 4 * norms,
                             "int8": proj + 2 * (emb + side) + 4 * norms, "fp8": proj + 2 * (emb + side) + 4 * norms}}


def main(argv=None) -> int:
    from l2v.quantize.config import trt_config
    from l2v.quantize.trt_methods import policy
    from l2v.trt.plan import make_plan, parse_shapes

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench/results/trt_plan_llama3_8b")
    args = p.parse_args(argv)
    size = sizes(SHAPE)
    profiles = parse_shapes(PROFILES, SHAPE["max_length"])
    out = {"shape": SHAPE, **{k: v for k, v in size.items() if k != "weight_bytes"}, "plans": {}}
    for prec in ("fp16", "bf16", "int8", "fp8"):
        cfg = trt_config(prec, PROFILES)
        plan = make_plan(cfg.variant, prec, f"model_{cfg.variant}.onnx", True, profiles, policy(prec, {}, cfg),
                         WORKSPACE)
        out["plans"][prec] = {**plan.to_dict(), "weight_bytes_estimate": size["weight_bytes"][prec]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [f"Llama-3-8B shape ({size['params'] / 1e9:.2f} B parameters), max_length {SHAPE['max_length']}, "
             f"profiles `{PROFILES}`, workspace {WORKSPACE >> 30} GiB, external data (> 2 GiB graph).", "",
             "| variant | weights (GiB, est.) | min compute capability | min TensorRT |", "|---|---|---|---|"]
    for prec, d in out["plans"].items():
        lines.append(f"| {d['variant']} | {d['weight_bytes_estimate'] / 2**30:.1f} | "
                     f"{'.'.join(map(str, d['min_compute_capability']))} | {d['min_tensorrt']} |")
    lines += ["", "Equivalent trtexec line (first profile), trt-fp8:", "", f"    {out['plans']['fp8']['trtexec']}", ""]
    Path(f"{args.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
