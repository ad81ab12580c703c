"""TensorRT-ready ONNX graphs, part 1: which ops the TensorRT parser takes, node counts, the opset raise
(float8 Q/DQ needs 19) and the simplification of the exported graph's shape arithmetic.

Measured on SmolLM2-135M (fp32 graph, opset 18, torch.export/dynamo): 2110 nodes; the onnxscript
optimizer and onnx-ir's common passes change nothing (2110); onnxslim 0.1.98 folds 30 Slices (2080);
`fold_transpose_reshapes` below rewrites how torch.export writes K^T inside SDPA
(Reshape -> Transpose[0,2,1] -> Reshape with shape arithmetic) into one Transpose[0,1,3,2] and drops
the orphaned shape nodes: 1870 nodes, identical vectors. onnxslim on top adds nothing, so it is not a
dependency.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from l2v.quantize import graph

# ONNX-TensorRT parser operator support (onnx/onnx-tensorrt docs/operators.md, TensorRT 10.x; TensorRT
# 10.x parses opsets 9-20, 11.x up to 25). A graph with any other op (or any non-default domain, e.g. ORT's
# com.microsoft contrib ops) fails to parse.
TRT_SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN
LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max
MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())
INT64_MAX = 2**63 - 1


def node_counts(model) -> dict:
    """{"nodes": total, "ops": {op: count}} of the main graph, most frequent first."""
    c = Counter(n.op_type for n in model.graph.node)
    return {"nodes": sum(c.values()), "ops": dict(sorted(c.items(), key=lambda t: -t[1]))}


def trt_unsupported(model) -> list[str]:
    """Ops (with domain) the TensorRT ONNX parser cannot import, one string per distinct op."""
    bad = {f"{n.domain or 'ai.onnx'}::{n.op_type}" for n in model.graph.node
           if n.domain not in ("", "ai.onnx") or n.op_type not in TRT_SUPPORTED_OPS}
    return sorted(bad)


def opset_of(model) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def weight_modules(model) -> dict:
    """{projection weight initializer: module name}: survives tools that drop node metadata (they keep
    initializer names), so the module names can be put back."""
    return {n.input[1]: mod for n, mod in graph.linear_matmuls(model) if mod != n.name}


def restore_module_metadata(model, modules: dict) -> int:
    """Give projection MatMuls that lost their name-scope metadata it back (returns how many)."""
    from onnx import StringStringEntryProto

    n_set = 0
    for n in model.graph.node:
        if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in modules and graph.module_name(n) == n.name:
            del n.metadata_props[:]
            n.metadata_props.append(StringStringEntryProto(
                key="pkg.torch.onnx.name_scopes", value=repr(["", modules[n.input[1]], n.name])))
            n_set += 1
    return n_set


def set_opset(model, version: int):
    """Raise the default-domain opset with ONNX's version converter (which rewrites ops whose signature
    changed); the projection MatMuls keep their module names. Consumes `model`: the converter copies the
    graph, so the large initializers' data is moved out first and into the result after (a 2 GB graph
    does not need twice the memory)."""
    from onnx import version_converter

    from l2v.errors import ValidationError

    if opset_of(model) >= version:
        return model
    modules = weight_modules(model)
    kept = {}
    for init in model.graph.initializer:
        if init.HasField("raw_data") and int(np.prod(init.dims or [1])) >= 4096:
            kept[init.name] = init.raw_data
            init.ClearField("raw_data")
    out = version_converter.convert_version(model, version)
    for init in out.graph.initializer:
        if init.name in kept:
            init.raw_data = kept.pop(init.name)
    if kept:
        raise ValidationError(f"internal: the opset {version} conversion dropped initializers {sorted(kept)[:3]}")
    restore_module_metadata(out, modules)
    return out


def simplify(model, steps: str = "transpose"):
    """Fold shape arithmetic, drop dead nodes; returns (model, {"nodes_before", "nodes_after", "steps"}).
    `steps` joined with "+": "transpose" (`fold_transpose_reshapes`), "onnxir" (onnx-ir common passes:
    constants lifted, common subexpressions merged, unused nodes removed), "onnxslim" (if installed)."""
    before = len(model.graph.node)
    modules = weight_modules(model)
    out = model
    for step in steps.split("+"):
        if step == "transpose":
            fold_transpose_reshapes(out)
        elif step == "onnxir":
            out = _onnx_ir_passes(out)
        elif step == "onnxslim":
            import onnxslim

            out = onnxslim.slim(out)
        else:
            raise ValueError(f"unknown simplification step {step!r}")
    restore_module_metadata(out, modules)
    return out, {"nodes_before": before, "nodes_after": len(out.graph.node), "steps": steps}


def _onnx_ir_passes(model):
    import onnx_ir as ir
    from onnx_ir.passes import common

    m = ir.serde.deserialize_model(model)
    passes = [common.LiftConstantsToInitializersPass(), common.RemoveUnusedNodesPass(),
              common.CommonSubexpressionEliminationPass(), common.RemoveUnusedNodesPass()]
    for p in passes:
        p(m)
    return ir.serde.serialize_model(m)


# ----------------------------------------------------------------------------- shape-arithmetic rewrites
def _int_const(inits: dict, consts: dict, name: str):
    from onnx import numpy_helper

    if name in inits:
        return numpy_helper.to_array(inits[name])
    if name in consts:
        a = next(a for a in consts[name].attribute if a.name == "value")
        return numpy_helper.to_array(a.t)
    return None


def _symbolic_shape(name, producer, inits, consts, rank_of):
    """A 1-D int64 shape tensor as a list of ("dim", X, k) (k-th dim of tensor X) or ("const", v); None
    when it is not a Concat of constants and Slices of Shape(X)."""
    c = _int_const(inits, consts, name)
    if c is not None:
        return [("const", int(v)) for v in np.atleast_1d(c)]
    p = producer.get(name)
    if p is None:
        return None
    if p.op_type == "Concat":
        out = []
        for i in p.input:
            part = _symbolic_shape(i, producer, inits, consts, rank_of)
            if part is None:
                return None
            out += part
        return out
    if p.op_type not in ("Shape", "Slice"):
        return None
    shape_node = p if p.op_type == "Shape" else producer.get(p.input[0])
    if shape_node is None or shape_node.op_type != "Shape":
        return None
    x = shape_node.input[0]
    r = rank_of(x)
    if r is None:
        return None
    attrs = {a.name: a.i for a in shape_node.attribute}
    dims = list(range(r))[attrs.get("start", 0): attrs.get("end", r)]
    if p.op_type == "Slice":
        if len(p.input) > 3 and p.input[3]:
            return None
        s, e = (_int_const(inits, consts, p.input[k]) for k in (1, 2))
        if s is None or e is None:
            return None
        s, e = int(np.atleast_1d(s)[0]), int(np.atleast_1d(e)[0])
        dims = dims[slice(s, None if e >= INT64_MAX else e)]
    return [("dim", x, d) for d in dims]


def fold_transpose_reshapes(model) -> int:
    """Reshape(Transpose(Reshape(X, [-1, X.d2, X.d3]), [0,2,1]), [X.d0, X.d1, X.d3, X.d2]) -> Transpose(X,
    [0,1,3,2]) for rank-4 X (how torch.export writes k.transpose(-2, -1) inside SDPA), in place. Returns
    the number of rewrites; the orphaned shape nodes are removed."""
    import onnx
    from onnx import helper

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    ranks, static = {}, {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            ranks[vi.name] = len(dims)
            static[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    del inferred
    inits = graph.initializers(model)
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    producer = {o: n for n in model.graph.node for o in n.output}

    def same_dim(entry, x, k):
        if entry[0] == "dim":
            return entry[1] == x and entry[2] == k
        return static.get(x, [None] * 4)[k] == entry[1]

    replaced = {}
    for r2 in model.graph.node:
        t = producer.get(r2.input[0]) if r2.op_type == "Reshape" else None
        if t is None or t.op_type != "Transpose" or [list(a.ints) for a in t.attribute if a.name == "perm"] != [[0, 2, 1]]:
            continue
        r1 = producer.get(t.input[0])
        if r1 is None or r1.op_type != "Reshape" or ranks.get(r1.input[0]) != 4:
            continue
        x = r1.input[0]
        s1 = _symbolic_shape(r1.input[1], producer, inits, consts, ranks.get)
        s2 = _symbolic_shape(r2.input[1], producer, inits, consts, ranks.get)
        if not s1 or not s2 or len(s1) != 3 or len(s2) != 4:
            continue
        ok1 = s1[0] == ("const", -1) and same_dim(s1[1], x, 2) and same_dim(s1[2], x, 3)
        ok2 = same_dim(s2[0], x, 0) and same_dim(s2[1], x, 1) and same_dim(s2[2], x, 3) and same_dim(s2[3], x, 2)
        if ok1 and ok2:
            replaced[r2.name] = helper.make_node("Transpose", [x], [r2.output[0]], perm=[0, 1, 3, 2],
                                                 name=f"{r2.name}__swap_last2")
    if replaced:
        nodes = [replaced.get(n.name, n) for n in model.graph.node]
        model.graph.ClearField("node")
        model.graph.node.extend(nodes)
        remove_dead_nodes(model)
    return len(replaced)


def remove_dead_nodes(model) -> int:
    """Drop nodes whose outputs nobody reads, and unused initializers; returns the nodes removed."""
    needed = {o.name for o in model.graph.output}
    keep = []
    for n in reversed(list(model.graph.node)):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    removed = len(model.graph.node) - len(keep)
    model.graph.ClearField("node")
    model.graph.node.extend(reversed(keep))
    used = {i for n in model.graph.node for i in n.input}
    inits = [i for i in model.graph.initializer if i.name in used]
    model.graph.ClearField("initializer")
    model.graph.initializer.extend(inits)
    return removed
