"""W8A8 with per-token activation scales, in standard ONNX ops on ORT's fast u8 x s8 MatMulInteger.

ORT's dynamic quantization scales activations per *tensor* (one scale for every token of the batch,
padding included), which the outlier channels and outlier tokens of an LLM ruin. Here each token
(row) gets its own scale, computed once per input tensor and shared by the MatMuls reading it:

    s_x = max(|x|, axis=-1) / 127            # [B, S, 1]
    x_q = uint8(round(x / s_x) + 128)        # symmetric, stored as uint8 with the scalar zero point 128
    y   = float(MatMulInteger(x_q, W_q, 128)) * s_x * s_w    # W_q int8 per output channel, s_w [N]

(On CPUs without VNNI, `reduce_range` keeps weights in 7 bits to avoid u8 x s8 saturation.)
"""
from __future__ import annotations

import numpy as np

from l2v.quantize import graph


def quantize_weight(w: np.ndarray, reduce_range: bool = False) -> tuple[np.ndarray, np.ndarray]:
    qmax = 63.0 if reduce_range else 127.0
    s = np.maximum(np.abs(w).max(axis=0), 1e-12) / qmax  # per output channel of B [K, N]
    q = np.clip(np.round(w / s[None, :]), -qmax, qmax).astype(np.int8)
    return q, s.astype(np.float32)


def per_token_int8(model, exclude=(), reduce_range: bool = False):
    """Rewrite every projection MatMul not in `exclude` (node names) in place; returns `model`."""
    from onnx import TensorProto, helper, numpy_helper

    inits = graph.initializers(model)
    targets = [n for n, _ in graph.linear_matmuls(model) if n.name not in set(exclude)]
    add = model.graph.initializer.append
    add(numpy_helper.from_array(np.array([-1], dtype=np.int64), "l2v_pt_axes"))
    add(numpy_helper.from_array(np.array(1e-8, dtype=np.float32), "l2v_pt_eps"))
    add(numpy_helper.from_array(np.array(1.0 / 127.0, dtype=np.float32), "l2v_pt_inv127"))
    add(numpy_helper.from_array(np.array(128.0, dtype=np.float32), "l2v_pt_128f"))
    add(numpy_helper.from_array(np.array(128, dtype=np.uint8), "l2v_pt_zp"))
    new_nodes: dict[str, list] = {}  # consumer name -> nodes to put in its place
    for g, (x, consumers) in enumerate(graph.groups_by_input(model, targets).items()):
        p = f"l2v_pt{g}"
        act = [
            helper.make_node("Abs", [x], [f"{p}_abs"], name=f"{p}_abs"),
            helper.make_node("ReduceMax", [f"{p}_abs", "l2v_pt_axes"], [f"{p}_amax"], keepdims=1, name=f"{p}_amax"),
            helper.make_node("Max", [f"{p}_amax", "l2v_pt_eps"], [f"{p}_amax_c"], name=f"{p}_max"),
            helper.make_node("Mul", [f"{p}_amax_c", "l2v_pt_inv127"], [f"{p}_scale"], name=f"{p}_scale"),
            helper.make_node("Div", [x, f"{p}_scale"], [f"{p}_div"], name=f"{p}_div"),
            helper.make_node("Round", [f"{p}_div"], [f"{p}_round"], name=f"{p}_round"),
            helper.make_node("Add", [f"{p}_round", "l2v_pt_128f"], [f"{p}_shift"], name=f"{p}_shift"),
            helper.make_node("Cast", [f"{p}_shift"], [f"{p}_q"], to=TensorProto.UINT8, name=f"{p}_q"),
        ]
        for j, c in enumerate(consumers):
            q, s = quantize_weight(numpy_helper.to_array(inits[c.input[1]]).astype(np.float32), reduce_range)
            wq, ws = f"{c.input[1]}_l2v_q", f"{c.input[1]}_l2v_s"
            add(numpy_helper.from_array(q, wq))
            add(numpy_helper.from_array(s, ws))
            o = f"{p}_{j}"
            nodes = act if j == 0 else []
            nodes = nodes + [
                helper.make_node("MatMulInteger", [f"{p}_q", wq, "l2v_pt_zp"], [f"{o}_i32"], name=f"{c.name}_l2v_mmi"),
                helper.make_node("Cast", [f"{o}_i32"], [f"{o}_f"], to=TensorProto.FLOAT, name=f"{o}_cast"),
                helper.make_node("Mul", [f"{o}_f", f"{p}_scale"], [f"{o}_fx"], name=f"{o}_mulx"),
                helper.make_node("Mul", [f"{o}_fx", ws], [c.output[0]], name=f"{o}_mulw"),
            ]
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
