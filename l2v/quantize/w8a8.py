"""W8A8 with per-token activation scales, in standard ONNX ops on ORT's fast u8 x s8 MatMulInteger.

ORT's dynamic quantization scales activations per *tensor* (one scale for every token of the batch,
padding included), which the outlier channels and outlier tokens of an LLM ruin. Here each token
(row) gets its own scale, computed once per input tensor and shared by the MatMuls reading it:

    s_x = max(|x|, axis=-1) / 127            # [B, S, 1]
    x_q = uint8(round(x / s_x) + 128)        # symmetric, stored as uint8 with the scalar zero point 128
    y   = float(MatMulInteger(x_q, W_q, 128)) * s_x * s_w    # W_q int8 per output channel, s_w [N]

(On CPUs without VNNI, `reduce_range` keeps weights in 7 bits to avoid u8 x s8 saturation.)

Two graph forms of the same arithmetic (`fused`):
- fused (default, ONNX Runtime): x_q = one per-axis QuantizeLinear over x viewed as [tokens, K] (scale and
  zero point per row), and y = MatMulIntegerToFloat(x_q, W_q, 1, s_w, 128) * s_x (com.microsoft: the
  int32 -> float conversion and s_w happen in the GEMM's output loop). 2 full-size passes per input
  tensor + 1 per projection instead of 5 + 3; x_q is bitwise the same, y equal to float rounding.
- unfused: Div / Round / Add / Cast and MatMulInteger / Cast / Mul / Mul, standard ONNX only.

Outlier channels (LLM.int8()-style decomposition): where `outliers` names input channels O of a tensor,
those channels are taken out before the scale is computed and go through a small fp32 MatMul,

    x_r = x * m_O                            # m_O: 1, and 0 on the channels O
    y   = W8A8(x_r) + Gather(x, O) @ W[O, :] # fp32 on k = |O| channels (k / K of the FLOPs)

so one huge channel no longer sets every token's scale.
"""
from __future__ import annotations

import numpy as np

from l2v.numerics import INT8_MAX, absmax_scale, quantize
from l2v.quantize import graph


MS_DOMAIN = "com.microsoft"
# the graph constants every per-token group shares (names are part of the graph form)
CONSTANTS = {
    "l2v_pt_axes": np.array([-1], dtype=np.int64),
    "l2v_pt_eps": np.array(1e-8, dtype=np.float32),
    "l2v_pt_inv127": np.array(1.0 / INT8_MAX, dtype=np.float32),
    "l2v_pt_128f": np.array(128.0, dtype=np.float32),
    "l2v_pt_zp": np.array(128, dtype=np.uint8),
    "l2v_pt_one": np.array(1.0, dtype=np.float32),
    "l2v_pt_flat": np.array([-1], dtype=np.int64),
}


def quantize_weight(w: np.ndarray, reduce_range: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output channel of B [K, N] (7 bits with `reduce_range`): (q [K, N], scale [N])."""
    qmax = 63.0 if reduce_range else INT8_MAX
    s = absmax_scale(w, axis=0, qmax=qmax)  # [1, N]
    return quantize(w, s, qmax).astype(np.int8), s[0].astype(np.float32)


def _outlier_nodes(p: str, x: str, idx: np.ndarray, width: int, add) -> tuple[list, str, str]:
    """Nodes splitting `x` into (x with channels idx zeroed, x[..., idx]); returns (nodes, x_r, x_o)."""
    from onnx import helper, numpy_helper

    keep = np.ones(width, dtype=np.float32)
    keep[idx] = 0.0
    add(numpy_helper.from_array(keep, f"{p}_keep"))
    add(numpy_helper.from_array(idx, f"{p}_oidx"))
    nodes = [helper.make_node("Mul", [x, f"{p}_keep"], [f"{p}_xr"], name=f"{p}_xr"),
             helper.make_node("Gather", [x, f"{p}_oidx"], [f"{p}_xo"], axis=-1, name=f"{p}_xo")]
    return nodes, f"{p}_xr", f"{p}_xo"


def _activation_nodes(p: str, x: str, width: int, fused: bool, add) -> tuple[list, str, str]:
    """Per-token uint8 quantization of `x` [..., width]: (nodes, x_q, s_x [..., 1])."""
    from onnx import TensorProto, helper, numpy_helper

    scale = f"{p}_scale"
    nodes = [
        helper.make_node("Abs", [x], [f"{p}_abs"], name=f"{p}_abs"),
        helper.make_node("ReduceMax", [f"{p}_abs", "l2v_pt_axes"], [f"{p}_amax"], keepdims=1, name=f"{p}_amax"),
        helper.make_node("Max", [f"{p}_amax", "l2v_pt_eps"], [f"{p}_amax_c"], name=f"{p}_max"),
        helper.make_node("Mul", [f"{p}_amax_c", "l2v_pt_inv127"], [scale], name=f"{p}_scale"),
    ]
    if not fused:
        return nodes + [
            helper.make_node("Div", [x, scale], [f"{p}_div"], name=f"{p}_div"),
            helper.make_node("Round", [f"{p}_div"], [f"{p}_round"], name=f"{p}_round"),
            helper.make_node("Add", [f"{p}_round", "l2v_pt_128f"], [f"{p}_shift"], name=f"{p}_shift"),
            helper.make_node("Cast", [f"{p}_shift"], [f"{p}_q"], to=TensorProto.UINT8, name=f"{p}_q"),
        ], f"{p}_q", scale
    add(numpy_helper.from_array(np.array([-1, width], dtype=np.int64), f"{p}_rows"))
    return nodes + [
        helper.make_node("Reshape", [x, f"{p}_rows"], [f"{p}_x2"], name=f"{p}_x2"),
        helper.make_node("Reshape", [scale, "l2v_pt_flat"], [f"{p}_s1"], name=f"{p}_s1"),
        helper.make_node("Shape", [f"{p}_s1"], [f"{p}_n"], name=f"{p}_n"),
        helper.make_node("Expand", ["l2v_pt_zp", f"{p}_n"], [f"{p}_zp"], name=f"{p}_zp"),
        helper.make_node("QuantizeLinear", [f"{p}_x2", f"{p}_s1", f"{p}_zp"], [f"{p}_q2"], axis=0, name=f"{p}_q2"),
        helper.make_node("Shape", [x], [f"{p}_shape"], name=f"{p}_shape"),
        helper.make_node("Reshape", [f"{p}_q2", f"{p}_shape"], [f"{p}_q"], name=f"{p}_q"),
    ], f"{p}_q", scale


def _matmul_nodes(name: str, o: str, q: str, wq: str, ws: str, scale: str, out: str, fused: bool) -> list:
    """y = (x_q - 128) @ W_q * s_x * s_w into `out`."""
    from onnx import TensorProto, helper

    if fused:
        return [helper.make_node("MatMulIntegerToFloat", [q, wq, "l2v_pt_one", ws, "l2v_pt_zp"], [f"{o}_fw"],
                                 domain=MS_DOMAIN, name=name),
                helper.make_node("Mul", [f"{o}_fw", scale], [out], name=f"{o}_mulx")]
    return [helper.make_node("MatMulInteger", [q, wq, "l2v_pt_zp"], [f"{o}_i32"], name=name),
            helper.make_node("Cast", [f"{o}_i32"], [f"{o}_f"], to=TensorProto.FLOAT, name=f"{o}_cast"),
            helper.make_node("Mul", [f"{o}_f", scale], [f"{o}_fx"], name=f"{o}_mulx"),
            helper.make_node("Mul", [f"{o}_fx", ws], [out], name=f"{o}_mulw")]


def per_token_int8(model, exclude=(), reduce_range: bool = False, outliers: dict | None = None, fused: bool = True):
    """Rewrite every projection MatMul not in `exclude` (node names) in place; returns `model`.
    `outliers`: {input tensor name: channel indices} kept in fp32 (see the module docstring);
    `fused`: the graph form (see the module docstring)."""
    from onnx import helper, numpy_helper

    inits = graph.initializers(model)
    targets = [n for n, _ in graph.linear_matmuls(model) if n.name not in set(exclude)]
    add = model.graph.initializer.append
    for name, value in CONSTANTS.items():
        add(numpy_helper.from_array(value, name))
    if fused and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    new_nodes: dict[str, list] = {}  # consumer name -> nodes to put in its place
    for g, (x, consumers) in enumerate(graph.groups_by_input(model, targets).items()):
        p = f"l2v_pt{g}"
        idx = np.asarray((outliers or {}).get(x, []), dtype=np.int64)
        width = inits[consumers[0].input[1]].dims[0]
        split, xq, xo = [], x, None
        if idx.size:
            split, xq, xo = _outlier_nodes(p, x, idx, width, add)
        act, q_name, scale = _activation_nodes(p, xq, width, fused, add)
        for j, c in enumerate(consumers):
            w = numpy_helper.to_array(inits[c.input[1]]).astype(np.float32)
            w_int = w
            if xo is not None:  # the outlier rows run in fp32: keep them out of the int8 weight scales
                w_int = w.copy()
                w_int[idx] = 0.0
            q, s = quantize_weight(w_int, reduce_range)
            wq, ws = f"{c.input[1]}_l2v_q", f"{c.input[1]}_l2v_s"
            add(numpy_helper.from_array(q, wq))
            add(numpy_helper.from_array(s, ws))
            o = f"{p}_{j}"
            nodes = (split + act) if j == 0 else []
            if xo is None:
                nodes = nodes + _matmul_nodes(f"{c.name}_l2v_mmi", o, q_name, wq, ws, scale, c.output[0], fused)
            else:
                add(numpy_helper.from_array(w[idx], f"{c.input[1]}_l2v_wo"))
                nodes = nodes + _matmul_nodes(f"{c.name}_l2v_mmi", o, q_name, wq, ws, scale, f"{o}_yq", fused)
                nodes += [helper.make_node("MatMul", [xo, f"{c.input[1]}_l2v_wo"], [f"{o}_yo"], name=f"{o}_mmo"),
                          helper.make_node("Add", [f"{o}_yq", f"{o}_yo"], [c.output[0]], name=f"{o}_add")]
            new_nodes[c.name] = nodes
    out = []
    for n in model.graph.node:
        out.extend(new_nodes.get(n.name, [n]))
    model.graph.ClearField("node")
    model.graph.node.extend(out)
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    model.graph.ClearField("initializer")
    model.graph.initializer.extend(keep)
    return model
