"""Node counts of an artifact's fp32 graph before and after the trt-* simplification
(`l2v.quantize.trt_graph.simplify`, the fold every trt-* variant starts from), with the shape-arithmetic
ops that it removes, and whether the TensorRT parser takes every op. Needs only the graph (no torch).

    python bench/trt_node_counts.py ARTIFACT [--steps transpose] --out bench/results/trt_nodes_smollm2

Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHOWN = ("Shape", "Slice", "Concat", "Reshape", "Transpose", "Gather", "Unsqueeze", "MatMul")


def main(argv=None) -> int:
    from l2v.artifact import open_artifact
    from l2v.quantize import graph
    from l2v.quantize.trt_graph import node_counts, set_opset, simplify, trt_unsupported

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("artifact")
    p.add_argument("--steps", default="transpose", help="simplify() steps, joined with + (transpose, onnxir, onnxslim)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    art = open_artifact(args.artifact)
    src = art.path(art.variant("fp32").main.path)
    model = graph.load(src)
    before = node_counts(model)
    model, facts = simplify(model, args.steps)
    after = node_counts(model)
    model = set_opset(model, 19)
    out = {"artifact": str(art.root), "source": art.manifest.source.get("name"), "steps": args.steps,
           "before": before, "after": after, "trt_unsupported_after_opset19": trt_unsupported(model)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [f"{out['source']}: fp32 graph node counts, exported vs after `simplify(steps={args.steps!r})`; ops the "
             f"TensorRT parser lacks after opset 19: {out['trt_unsupported_after_opset19'] or 'none'}.", "",
             "| graph | nodes | " + " | ".join(SHOWN) + " |", "|---" * (2 + len(SHOWN)) + "|"]
    for name, c in (("exported", before), ("simplified", after)):
        lines.append(f"| {name} | {c['nodes']} | " + " | ".join(str(c["ops"].get(o, 0)) for o in SHOWN) + " |")
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
