"""Merged vs unmerged last adapter, end to end on a real model: two real exports, four ways to embed.

    python bench/unmerged_adapter.py --model /path/SmolLM2-135M-Instruct.Q4_1.gguf --data /work/assets/data

Two random LoRA adapters (r=16, alpha=32, every projection, N(0, 0.02); stand-ins for MNTP + SimCSE) are
made on the model. `l2v.export_model` builds one artifact with both merged and one with
`unmerged_last=True` (the last adapter stays a LoRA branch in the ONNX graph and in torch/adapter/).
All 50 Lee documents are embedded with `l2v.load(...).encode` through ONNX Runtime and the PyTorch backend
of each artifact and compared with the merged artifact's ONNX fp32 vectors. Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def compare(ref: np.ndarray, got: np.ndarray) -> dict:
    from l2v.eval.metrics import cosine_rowwise

    return {"min_cosine": float(cosine_rowwise(ref, got).min()), "max_abs_diff": float(np.abs(ref - got).max()),
            "max_abs": float(np.abs(ref).max())}


def matmuls(artifact: Path) -> int:
    import onnx

    model = onnx.load(str(artifact / "model.onnx"), load_external_data=False)
    return sum(n.op_type == "MatMul" for n in model.graph.node)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None, help="model path (default: the embedded SmolLM2)")
    p.add_argument("--data", default=None)
    p.add_argument("--out", default="bench/results/unmerged_adapter")
    args = p.parse_args(argv)

    import l2v
    from l2v.artifact import read_manifest
    from l2v.eval.corpora import load_lee
    from l2v.model.load import load
    from l2v.model.source import resolve_model
    from text_presets import random_adapters

    lee = load_lee(args.data)
    source = resolve_model(args.model, demo=args.model is None)
    rows, timings, facts = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        adapters = random_adapters(load(source).model, tmp)
        arts = {}
        for label, unmerged in (("merged", False), ("unmerged", True)):
            t = time.perf_counter()
            arts[label] = l2v.export_model(args.model, tmp / label, adapters=adapters, unmerged_last=unmerged,
                                           demo=args.model is None, progress=False)
            timings[f"export {label}"] = round(time.perf_counter() - t, 1)
            manifest = read_manifest(arts[label])
            facts[label] = {"applied": [a.applied for a in manifest.adapters],
                            "adapters_merged": manifest.adapters_merged, "matmul_nodes": matmuls(arts[label]),
                            "validation_min_cosine": manifest.variants["fp32"].validation["min_cosine"]}
        vecs = {}
        for label, art in arts.items():
            for backend in ("onnx", "torch"):
                t = time.perf_counter()
                vecs[f"{label} {backend}"] = l2v.load(art, backend=backend).encode(lee.texts, batch_size=8)
                timings[f"encode {label} {backend}"] = round(time.perf_counter() - t, 1)
    ref = vecs["merged onnx"]
    for key, v in vecs.items():
        if key != "merged onnx":
            rows[key] = compare(ref, v)
    result = {"model": source.name, "texts": f"Lee, {len(lee.texts)} documents", "rows": rows, "facts": facts,
              "timings_s": timings, "machine": f"{platform.machine()}, {platform.python_version()}",
              "versions": _versions(), "created": time.strftime("%Y-%m-%d %H:%M")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(result, indent=2) + "\n")
    Path(f"{out}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def _versions() -> dict:
    import onnxruntime
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "onnxruntime": onnxruntime.__version__}


def markdown(r: dict) -> str:
    lines = [f"# Merged vs unmerged last adapter ({r['model']}, {r['texts']}, {r['created']})", "",
             "Reference: the merged artifact's ONNX fp32 vectors. Two random LoRA adapters, r=16, alpha=32.", "",
             "| embedded with | min cosine | max abs diff | max abs value |", "|---|---|---|---|"]
    for k, v in r["rows"].items():
        lines.append(f"| {k} | {v['min_cosine']:.9f} | {v['max_abs_diff']:.2e} | {v['max_abs']:.1f} |")
    lines += ["", "| artifact | adapters applied | adapters_merged | MatMul nodes | fp32 validation min cosine |",
              "|---|---|---|---|---|"]
    for k, f in r["facts"].items():
        lines.append(f"| {k} | {', '.join(f['applied'])} | {f['adapters_merged']} | {f['matmul_nodes']} | "
                     f"{f['validation_min_cosine']:.10f} |")
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v}" for k, v in r["timings_s"].items()),
              f"Versions: {r['versions']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
