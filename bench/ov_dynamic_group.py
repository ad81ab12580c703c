"""OpenVINO's run-time activation quantization on an int8-weights IR (`ov-int8:mode=weights`): recall and speed
per `DYNAMIC_QUANTIZATION_GROUP_SIZE` (issue 17).

    PYTHONPATH=. python bench/ov_dynamic_group.py ARTIFACT [--variant ov-int8-w] [--docs 400]
        [--groups default,64,128,0] [--out bench/results/ov_dynamic_group]

The CPU plugin compiles an IR whose FullyConnected weights are int8 (activations fp32 in the graph) either
as int8 weights with fp32 compute, or, on CPUs where it can, quantizing the activations per group of
`DYNAMIC_QUANTIZATION_GROUP_SIZE` input channels at run time (0 turns that off). Each group size is the same
IR compiled again; recall@10 / mean cosine against the artifact's `ov-fp32` over `--docs` BBC documents at
128 tokens, p50 ms per call of full-length rows at batch 1 and 32. Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def engine(path: Path, group: str, output: str):
    """The IR compiled as l2v compiles it (LATENCY, fp32 float ops), with the given run-time quantization group."""
    from l2v.runtime.openvino import OpenVINOBackend, compile_model

    extra = {} if group == "default" else {"DYNAMIC_QUANTIZATION_GROUP_SIZE": int(group)}
    return OpenVINOBackend(compile_model(path, properties=extra), output)


def p50_ms(model, batch, calls: int) -> float:
    """p50 of `calls` calls after one warm-up, with cpu_engines' timing loop (one runner)."""
    from cpu_engines import interleaved

    return round(interleaved({"ir": model}, batch, float("inf"), calls)["ir"]["p50_ms"], 1)


def main(argv=None) -> int:
    from cpu_engines import corpus_batches, load_average, speed_batch
    from l2v.artifact import open_artifact
    from l2v.artifact.files import resolve
    from l2v.quantize.measure import fidelity
    from l2v.runtime.cpu import cpu_name, flags_of_note, int8_gemm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact")
    p.add_argument("--variant", default="ov-int8-w")
    p.add_argument("--docs", type=int, default=400)
    p.add_argument("--groups", default="default,64,128,0")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(HERE / "results" / "ov_dynamic_group"))
    args = p.parse_args(argv)
    art = open_artifact(args.artifact)
    xml = {v: resolve(art.root, art.manifest.variants[v].main.path) for v in ("ov-fp32", args.variant)}
    texts, _, batches = corpus_batches(art, args.docs, 128, args.data_dir)
    rows, ref = [], None
    for label, path, group in [("ov-fp32", xml["ov-fp32"], "default")] + \
            [(args.variant, xml[args.variant], g) for g in args.groups.split(",")]:
        model = engine(path, group, art.manifest.graph.output)
        emb = np.concatenate([model.run(b) for b in batches])
        ref = emb if ref is None else ref
        f = fidelity(ref, emb)
        row = {"variant": label, "group": group, "recall@10": f["recall@10"], "mean_cosine": round(f["mean_cosine"], 6),
               "b1_ms": p50_ms(model, speed_batch(batches, 128, 1), 12),
               "b32_ms": p50_ms(model, speed_batch(batches, 128, 32), 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = {"command": " ".join(["python"] + sys.argv), "cpu": cpu_name(), "int8_gemm": int8_gemm(),
            "cpu_flags": flags_of_note(),
            "docs": len(texts), "load_after": load_average()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = ["# OpenVINO run-time activation quantization by group size\n", f"`{meta['command']}`  ",
             f"{meta['cpu']}, int8 GEMM: {meta['int8_gemm']}, {' '.join(meta['cpu_flags'])}; {meta['docs']} BBC docs at 128 "
             f"tokens; recall vs ov-fp32; load average after {meta['load_after']}\n",
             "| variant | DYNAMIC_QUANTIZATION_GROUP_SIZE | recall@10 | mean cos | b1 ms | b32 ms |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['group']} | {r['recall@10']} | {r['mean_cosine']} | {r['b1_ms']} | {r['b32_ms']} |"
              for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
