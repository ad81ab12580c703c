"""Does this CPU's int8 GEMM in ONNX Runtime saturate? u8 x s8 with 8-bit vs 7-bit weights, vs exact integer math.

    python bench/u8s8_saturation.py [--out bench/results/u8s8_saturation]

x86 CPUs without VNNI multiply u8 x s8 with `vpmaddubsw`, which adds each pair of products in saturating
int16: 2 x 255 x 127 = 64,770 > 32,767. With per-token activations (x_q up to 255 around the zero point
128) and per-channel 8-bit weights (|q| up to 127), pairs clip. 7-bit weights (|q| <= 63, int8-smooth's
`reduce_range=true`, ORT's own `reduce_range`) cannot. For each LLM-like projection shape the script runs
int8-smooth's per-token graph (w8a8.per_token_int8) in ORT with 8- and 7-bit weights on random activations
and prints the relative RMS error of ORT's output against the exact integer product (what the
quantization itself should give) and against fp32. Independent of load; writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPES = [(576, 1536), (1536, 576), (896, 4864), (4096, 4096)]  # SmolLM2 up/down, Qwen0.5B up, 8B q


def rel_rms(got, ref) -> float:
    return float(np.sqrt(((got - ref) ** 2).mean() / (ref ** 2).mean()))


def one(k: int, n: int, tokens: int, rng) -> dict:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from l2v.quantize.w8a8 import per_token_int8

    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    x = rng.standard_normal((1, tokens, k)).astype(np.float32)
    row = {"K": k, "N": n, "tokens": tokens}
    for bits, rr in ((8, False), (7, True)):
        g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "s", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "s", n])],
                              [numpy_helper.from_array(w, "w")])
        model = per_token_int8(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), reduce_range=rr)
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        wq, ws = inits["w_l2v_q"].astype(np.float64), inits["w_l2v_s"]
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"x": x})[0]
        sx = np.maximum(np.abs(x).max(-1, keepdims=True), 1e-8) / 127.0
        exact = (np.round(x / sx) @ wq) * sx * ws
        row[f"w{bits} vs exact int"] = round(rel_rms(got, exact), 6)
        row[f"w{bits} vs fp32"] = round(rel_rms(got, x @ w), 6)
        row[f"w{bits} exact int vs fp32"] = round(rel_rms(exact, x @ w), 6)
    return row


def main(argv=None) -> None:
    import onnxruntime as ort

    from l2v.runtime.cpu import flags_of_note

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--out", default=str(HERE / "results" / "u8s8_saturation"))
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [one(k, n, args.tokens, rng) for k, n in SHAPES]
    meta = {"cpu": platform.processor() or platform.machine(), "flags": flags_of_note(), "onnxruntime": ort.__version__,
            "command": "python bench/u8s8_saturation.py"}
    cols = list(rows[0])
    md = ["# u8 x s8 saturation in ONNX Runtime on this CPU\n", f"Command: `{meta['command']}`  ",
          f"CPU flags: {', '.join(meta['flags'])}; onnxruntime {meta['onnxruntime']}  ",
          "Relative RMS error of int8-smooth's per-token graph (random activations, weights ~ N(0, 1/K)).\n",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    text = "\n".join(md) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
