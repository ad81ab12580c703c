"""Run a strongly typed bf16 graph on ONNX Runtime's CPU provider, which has no bf16 kernels: the same
graph with every bf16 tensor held in fp32 and rounded to bf16 where the graph produces it.

Every bf16 initializer becomes fp32 (exact: bf16 values are fp32 values); every node whose output is
bf16 computes in fp32 and its output goes through Cast(bf16) -> Cast(fp32) (the CPU provider has those
Casts); Casts to bf16 become that round trip. What a bf16 GPU kernel computes is this up to
accumulation order (fp32 accumulation, one rounding of each op's output). Measured on SmolLM2 against
fp32 (200 BBC documents, 64 tokens): recall@10 0.983, mean cosine 0.99980.
"""
from __future__ import annotations

FLOAT, BFLOAT16 = 1, 16


def has_bf16(model) -> bool:
    return any(i.data_type == BFLOAT16 for i in model.graph.initializer) or any(
        a.name == "to" and a.i == BFLOAT16 for n in model.graph.node if n.op_type == "Cast" for a in n.attribute)


def _bf16_outputs(model) -> set:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(_skeleton(model), strict_mode=False)
    return {vi.name for vi in inferred.graph.value_info
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type == BFLOAT16}


def _skeleton(model):
    """A copy without the large initializers' data (types and shapes are all inference needs)."""
    import onnx

    m = onnx.ModelProto()
    m.ir_version = model.ir_version
    m.opset_import.extend(model.opset_import)
    g = m.graph
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    for init in model.graph.initializer:
        t = g.initializer.add()
        t.name, t.data_type = init.name, init.data_type
        t.dims.extend(init.dims)
        n = 1
        for d in init.dims:
            n *= int(d)
        if n < 4096:
            t.CopyFrom(init)
        else:
            t.raw_data = b""
    return m


def simulate_bf16(model):
    """The bf16 graph as an fp32 graph with bf16 rounding (in place; returns it)."""
    import numpy as np
    from onnx import helper, numpy_helper

    if not has_bf16(model):
        return model
    low_out = _bf16_outputs(model)
    for init in model.graph.initializer:
        if init.data_type == BFLOAT16:
            arr = numpy_helper.to_array(init).astype(np.float32)  # numpy_helper decodes bf16
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
    nodes = []
    for n in model.graph.node:
        for a in n.attribute:
            if a.name == "value" and a.type == a.TENSOR and a.t.data_type == BFLOAT16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
        to = next((a for a in n.attribute if a.name == "to"), None) if n.op_type == "Cast" else None
        if to is not None and to.i == BFLOAT16:
            mid = f"{n.output[0]}__bf16"
            nodes.append(helper.make_node("Cast", [n.input[0]], [mid], to=BFLOAT16, name=f"{n.name}__q"))
            nodes.append(helper.make_node("Cast", [mid], [n.output[0]], to=FLOAT, name=f"{n.name}__dq"))
            continue
        rounded = []
        for k, o in enumerate(n.output):
            if o in low_out and n.op_type != "Cast":
                n.output[k] = f"{o}__hi"
                rounded += [helper.make_node("Cast", [f"{o}__hi"], [f"{o}__bf16"], to=BFLOAT16, name=f"{o}__q"),
                            helper.make_node("Cast", [f"{o}__bf16"], [o], to=FLOAT, name=f"{o}__dq")]
        nodes.append(n)
        nodes.extend(rounded)
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
    model.graph.ClearField("value_info")
    return model
