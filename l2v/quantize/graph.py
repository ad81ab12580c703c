"""ONNX graph helpers: find the projection MatMuls (constant weight), name them by their PyTorch module,
fold per-input-channel scales into the weights and into the op that produces their input, count ops.

The dynamo exporter records each node's module path in the `pkg.torch.onnx.name_scopes` metadata, so a
MatMul is known as e.g. `backbone.layers.3.mlp.down_proj`; patterns match by substring or fnmatch.
"""
from __future__ import annotations

import ast
import fnmatch
from collections import Counter
from pathlib import Path

import numpy as np

QUANT_OPS = ("MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "MatMulNBits", "DynamicQuantizeMatMul",
             "MatMulIntegerToFloat", "GatherBlockQuantized", "QuantizeLinear", "DequantizeLinear")


def load(path: Path):
    import onnx

    return onnx.load(str(path))


TWO_GB = 2 * 1024**3  # protobuf's limit: larger graphs keep their weights in external data


def save(model, path: Path, external: bool | None = None) -> list[str]:
    """Save (external data `<name>.data` when over 2 GB, or when `external`); returns the file names."""
    import onnx

    path = Path(path)
    if external is None:
        external = model.ByteSize() >= TWO_GB
    onnx.save(model, str(path), save_as_external_data=external, location=f"{path.name}.data" if external else None)
    return [path.name, f"{path.name}.data"] if external else [path.name]


def has_external_data(path: Path) -> bool:
    path = Path(path)
    return path.with_name(path.name + ".data").exists()


def op_counts(model) -> dict:
    return dict(Counter(n.op_type for n in model.graph.node))


def quant_op_counts(model) -> dict:
    c = op_counts(model)
    return {k: c[k] for k in QUANT_OPS if c.get(k)}


def module_name(node) -> str:
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(p.value)
            except (ValueError, SyntaxError):
                break
            if len(scopes) >= 2:
                return scopes[-2]
    return node.name


def matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatch(name, p) if any(ch in p for ch in "*?[") else p in name for p in patterns)


def initializers(model) -> dict:
    return {i.name: i for i in model.graph.initializer}


HEAD_SCOPE = "head."  # l2v.model.head: the Dense layers after pooling, kept in fp32 (see linear_matmuls)


def linear_matmuls(model) -> list[tuple]:
    """[(node, module_name)] for every MatMul whose B is a 2-D initializer (the projections), except the
    head's (sentence-transformers Dense layers after pooling): they read one pooled vector per text, so
    there are no per-token activation statistics for them, and they are a small share of the weights."""
    inits = initializers(model)
    out = []
    for n in model.graph.node:
        if n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2:
            name = module_name(n)
            if not name.startswith(HEAD_SCOPE):
                out.append((n, name))
    return out


def node_names(model, patterns) -> list[str]:
    """ONNX node names of the projection MatMuls whose module name matches one of `patterns`."""
    return [n.name for n, mod in linear_matmuls(model) if patterns and matches(mod, patterns)]


def _array(init) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(init)


def _set(model, init, arr: np.ndarray) -> None:
    from onnx import numpy_helper

    init.CopyFrom(numpy_helper.from_array(arr.astype(_array(init).dtype), init.name))


def _uses(model) -> Counter:
    return Counter(i for n in model.graph.node for i in n.input)


def weight_of(model, node) -> np.ndarray:
    return _array(initializers(model)[node.input[1]])


def scale_weight_rows(model, node, s: np.ndarray) -> None:
    """B[j, :] *= s[j] (B is [in, out])."""
    init = _own_initializer(model, node, 1)
    _set(model, init, _array(init) * s[:, None].astype(np.float32))


def _own_initializer(model, node, idx: int):
    """The initializer at node.input[idx], copied first when another node also uses it."""
    inits = initializers(model)
    init = inits[node.input[idx]]
    if _uses(model)[init.name] > 1:
        from onnx import numpy_helper

        new = numpy_helper.from_array(_array(init), f"{init.name}_l2v_{node.name}")
        model.graph.initializer.append(new)
        node.input[idx] = new.name
        return model.graph.initializer[-1]
    return init


def fold_input_scale(model, consumers: list, s: np.ndarray) -> str:
    """Make `x @ B` == `(x / s) @ (s * B)` for every MatMul in `consumers` (all read the same tensor x).

    The division goes into the producer of x when possible: an RMSNorm weight (a Mul by a 1-D
    initializer), or the columns of the MatMul that makes one factor of a Mul (up_proj feeding
    down_proj). Otherwise a `Mul(x, 1/s)` node is inserted. Returns where it went.
    """
    from onnx import helper, numpy_helper

    x = consumers[0].input[0]
    s = np.asarray(s, dtype=np.float32)
    producers = {o: n for n in model.graph.node for o in n.output}
    readers = [n for n in model.graph.node if x in n.input]
    inits = initializers(model)
    uses = _uses(model)
    prod = producers.get(x)
    where = None
    only_ours = {n.name for n in readers} == {n.name for n in consumers}
    if prod is not None and prod.op_type == "Mul" and only_ours:
        for i, name in enumerate(prod.input):
            if name in inits and _array(inits[name]).shape == s.shape:
                init = _own_initializer(model, prod, i) if uses[name] > 1 else inits[name]
                _set(model, init, _array(init) / s)
                where = f"norm:{module_name(prod)}"
                break
        if where is None:
            for name in prod.input:
                up = producers.get(name)
                if (up is not None and up.op_type == "MatMul" and up.input[1] in inits and uses[name] == 1
                        and _array(inits[up.input[1]]).shape[-1] == s.shape[0]):
                    init = _own_initializer(model, up, 1)
                    _set(model, init, _array(init) / s[None, :])
                    where = f"linear:{module_name(up)}"
                    break
    if where is None:
        name = f"{x}_l2v_inv_scale"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), name))
        out = f"{x}_l2v_smoothed"
        mul = helper.make_node("Mul", [x, name], [out], name=f"{x}_l2v_smooth_mul")
        ours = {n.name for n in consumers}
        idx = min(i for i, n in enumerate(model.graph.node) if n.name in ours)
        model.graph.node.insert(idx, mul)
        for n in consumers:
            n.input[0] = out
        where = "inserted-mul"
    for n in consumers:
        scale_weight_rows(model, n, s)
    return where


def groups_by_input(model, nodes) -> dict:
    """{input tensor: [MatMul nodes reading it]} among `nodes` (q/k/v share one; gate/up share one)."""
    groups: dict[str, list] = {}
    for n in nodes:
        groups.setdefault(n.input[0], []).append(n)
    return groups
