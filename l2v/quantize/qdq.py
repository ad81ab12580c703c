"""Explicit quantization: QuantizeLinear/DequantizeLinear pairs on the projection MatMuls, in the form
TensorRT builds int8 / fp8 engines from, with scales from our calibration on real text.

TensorRT's rules (TensorRT 10/11 "explicit quantization"; ONNX-TensorRT operators.md):
* symmetric only: every zero point is 0 (int8 0, or float8e4m3fn 0);
* scales are build-time constants: a scalar (per tensor) or a 1-D vector (per channel: weights only).
  There is no static per-token scale, so each activation tensor gets ONE scale, calibrated here as
  max |x| over the calibration tokens (outlier channels excluded) / 127 (int8) or / 448 (fp8 e4m3);
* quantize the MatMul's inputs, never its output; weights are stored quantized (int8 / float8e4m3fn
  initializer) followed by DequantizeLinear(axis=1) with per-output-channel scales (B is [K, N]);
* float8e4m3fn needs opset >= 19; the scale has the activation's type (fp16 here).

ONNX Runtime's CPU provider executes the same Q/DQ arithmetic (int8, and float8e4m3fn at opset 19;
measured), which is how an int8/fp8 TensorRT variant's recall is measured without a GPU: TensorRT runs
int8 x int8 -> int32 (fp8 x fp8 -> fp32) GEMMs with these scales, so the results agree up to
accumulation order and the rounding of the fp16 parts.

Outlier channels (as int8-smooth): the k input channels with the largest calibration max |x| bypass the
quantized path in fp16,
    y = DQ(Q(x * m)) @ DQ(W_q with rows O zeroed) + Gather(x, O, axis=-1) @ W[O, :]
which TensorRT builds as an int8 (fp8) GEMM plus a small fp16 GEMM with K = k: with one scale per
tensor, this keeps one huge channel from flattening every other channel to zero.
"""
from __future__ import annotations

import numpy as np

from l2v.numerics import FP8_E4M3_MAX, INT8_MAX, absmax_scale, quantize, round_fp8
from l2v.quantize import graph

FLOAT, FLOAT16, BFLOAT16, INT8, FP8 = 1, 10, 16, 3, 17
QMAX = {"int8": INT8_MAX, "fp8": FP8_E4M3_MAX}


def quantize_weight(w: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel quantization of B [K, N]: (codes [K, N] as int8 or float8 e4m3 values
    in float32, scales [N] float32)."""
    s = absmax_scale(w, axis=0, qmax=QMAX[kind])  # [1, N]
    q = quantize(w, s) if kind == "int8" else round_fp8(w / s)
    return q.astype(np.float32), s[0].astype(np.float32)


def _codes(q: np.ndarray, name: str, kind: str):
    from onnx import helper, numpy_helper

    if kind == "int8":
        return numpy_helper.from_array(q.astype(np.int8), name)
    import ml_dtypes

    return helper.make_tensor(name, FP8, list(q.shape), q.astype(ml_dtypes.float8_e4m3fn).view(np.uint8).tobytes(),
                              raw=True)


def _float(arr, name: str, dt: int):
    """A float initializer in the activation's type (TensorRT: the scale has the input's type)."""
    from onnx import numpy_helper

    from l2v.quantize.trt_typed import low_tensor

    arr = np.asarray(arr, dtype=np.float32)
    return numpy_helper.from_array(arr, name) if dt == FLOAT else low_tensor(arr, name, dt)


def _zero(kind: str, n: int | None, name: str):
    from onnx import helper, numpy_helper

    shape = [] if n is None else [n]
    if kind == "int8":
        return numpy_helper.from_array(np.zeros(shape, dtype=np.int8), name)
    return helper.make_tensor(name, FP8, shape, bytes(max(1, n or 1)), raw=True)


def activation_amax(stats: dict, modules: list[str], outliers: np.ndarray, smooth: np.ndarray | None = None) -> float:
    """The calibrated range of a projection input shared by `modules` (after smoothing, outliers out)."""
    amax = np.max([stats[m]["amax"] for m in modules], axis=0).astype(np.float64)
    if smooth is not None:
        amax = amax / smooth
    keep = np.ones(amax.size, dtype=bool)
    keep[outliers] = False
    return float(amax[keep].max()) if keep.any() else float(amax.max())


def insert_qdq(model, stats: dict, kind: str, outliers: dict | None = None, smooth: dict | None = None,
               exclude=()) -> dict:
    """Quantize every projection MatMul with calibration statistics, except the node names in `exclude`,
    in place; returns facts. stats: {module: {"amax": [in]}} (Context.act_stats); outliers: {input tensor:
    channel indices} kept in the graph's high precision; smooth: {module: SmoothQuant s already folded
    into the graph} (the statistics are divided by it)."""
    from onnx import helper, numpy_helper

    from l2v.quantize.trt_graph import opset_of
    from l2v.quantize.trt_typed import value_types

    if kind == "fp8" and opset_of(model) < 19:
        raise ValueError("float8e4m3fn Q/DQ needs opset >= 19")
    types = value_types(model)
    inits = graph.initializers(model)
    targets = [n for n, mod in graph.linear_matmuls(model) if n.name not in set(exclude) and mod in stats]
    add = model.graph.initializer.append
    replace: dict[str, list] = {}
    ranges = {}
    for g, (x, consumers) in enumerate(graph.groups_by_input(model, targets).items()):
        p, dt = f"l2v_qdq{g}", types.get(x, FLOAT)
        mods = [graph.module_name(c) for c in consumers]
        idx = np.asarray((outliers or {}).get(x, []), dtype=np.int64)
        ranges[x] = activation_amax(stats, mods, idx, (smooth or {}).get(mods[0]))
        add(_float(max(ranges[x], 1e-8) / QMAX[kind], f"{p}_xs", dt))
        add(_zero(kind, None, f"{p}_xzp"))
        act, xq_in, xo = [], x, None
        if idx.size:
            keep = np.ones(inits[consumers[0].input[1]].dims[0], dtype=np.float32)
            keep[idx] = 0.0
            add(_float(keep, f"{p}_keep", dt))
            add(numpy_helper.from_array(idx, f"{p}_oidx"))
            act += [helper.make_node("Mul", [x, f"{p}_keep"], [f"{p}_xr"], name=f"{p}_xr"),
                    helper.make_node("Gather", [x, f"{p}_oidx"], [f"{p}_xo"], axis=-1, name=f"{p}_xo")]
            xq_in, xo = f"{p}_xr", f"{p}_xo"
        act += [helper.make_node("QuantizeLinear", [xq_in, f"{p}_xs", f"{p}_xzp"], [f"{p}_xq"], name=f"{p}_q"),
                helper.make_node("DequantizeLinear", [f"{p}_xq", f"{p}_xs", f"{p}_xzp"], [f"{p}_xdq"], name=f"{p}_dq")]
        for j, c in enumerate(consumers):
            replace[c.name] = (act if j == 0 else []) + _weight_nodes(c, inits, kind, dt, f"{p}_{j}", f"{p}_xdq", idx, xo, add)
    nodes = []
    for n in model.graph.node:
        nodes.extend(replace.get(n.name, [n]))
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
    graph_prune_initializers(model)
    model.graph.ClearField("value_info")
    return {"format": kind, "quantized_matmuls": len(replace), "activation_tensors": len(ranges),
            "outlier_tensors": sum(1 for x in ranges if len((outliers or {}).get(x, []))),
            "weights": f"{kind} per output channel (DequantizeLinear axis=1)",
            "activations": f"{kind} per tensor, static (calibration max |x|)"}


def _weight_nodes(c, inits: dict, kind: str, dt: int, o: str, x_dq: str, idx: np.ndarray, xo: str | None,
                  add) -> list:
    """DequantizeLinear of the stored weight codes + the MatMul (+ the outlier side GEMM) for consumer `c`."""
    from onnx import helper, numpy_helper

    wname = c.input[1]
    w = numpy_helper.to_array(inits[wname]).astype(np.float32)
    w_q = w.copy() if idx.size else w
    if idx.size:
        w_q[idx] = 0.0  # the outlier rows run in high precision: keep them out of the weight scales
    q, s = quantize_weight(w_q, kind)
    base = f"{wname}_{kind}"
    add(_codes(q, base, kind))
    add(_float(s, f"{base}_s", dt))
    add(_zero(kind, int(s.size), f"{base}_zp"))
    nodes = [helper.make_node("DequantizeLinear", [base, f"{base}_s", f"{base}_zp"], [f"{o}_w"], axis=1,
                              name=f"{o}_wdq")]
    if xo is None:
        nodes.append(helper.make_node("MatMul", [x_dq, f"{o}_w"], [c.output[0]], name=c.name))
    else:
        add(_float(w[idx], f"{wname}_outl", dt))
        nodes += [helper.make_node("MatMul", [x_dq, f"{o}_w"], [f"{o}_yq"], name=c.name),
                  helper.make_node("MatMul", [xo, f"{wname}_outl"], [f"{o}_yo"], name=f"{o}_mmo"),
                  helper.make_node("Add", [f"{o}_yq", f"{o}_yo"], [c.output[0]], name=f"{o}_add")]
    for m in nodes:
        if m.op_type == "MatMul":
            m.metadata_props.extend(c.metadata_props)
    return nodes


def graph_prune_initializers(model) -> None:
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    model.graph.ClearField("initializer")
    model.graph.initializer.extend(keep)
