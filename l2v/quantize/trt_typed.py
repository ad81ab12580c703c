"""TensorRT-ready ONNX graphs, part 2: a strongly typed fp16/bf16 graph with fp32 islands.

TensorRT 11 removed weak typing (BuilderFlag.FP16/BF16/INT8/FP8, precision constraints, per-layer
precision); TensorRT 10.x builds the same graphs as a STRONGLY_TYPED network (`trtexec --stronglyTyped`).
Every tensor's type is the one written in the ONNX graph, so the precision policy lives in the graph:

* the low type (fp16 or bf16): projections, attention MatMuls, rotary application, SiLU/GELU, residual
  adds (as transformers computes them in half precision);
* fp32 islands with Casts around them, where NeMo Export-Deploy's `OnnxLLMExporter` overrides layers to
  fp32: every RMSNorm/LayerNorm (x^2, mean, eps, sqrt, reciprocal, both Muls), the attention score scale
  + mask + Softmax (the QK^T MatMul runs low, its output is cast up; the probabilities are cast back for
  the PV MatMul), everything after the last norm (pooling and the L2 normalisation), and everything that
  does not depend on the hidden states (masks, positions, rotary tables: cheap, and finfo(fp32).min of
  the additive mask is -inf in fp16);
* optionally the residual-stream Adds in fp32 (`fp32_residual`: bf16's 8-bit mantissa loses the small
  updates of deep layers; measured on SmolLM2, recall@10 0.983 with it).

Graph inputs and outputs keep their types (int64 in, fp32 out).
"""
from __future__ import annotations

import contextlib
from collections import Counter, defaultdict

import numpy as np

FLOAT, FLOAT16, BFLOAT16 = 1, 10, 16
LOW_TYPES = {"fp16": FLOAT16, "bf16": BFLOAT16}
_BIG = 4096  # initializers with more elements are stripped while shapes are inferred


@contextlib.contextmanager
def weightless(model):
    """Strip the raw data of the large initializers for the duration (shape inference and the version
    converter copy the model; a 2 GB graph would need twice the memory). Shapes and small constants stay."""
    kept = {}
    try:
        for init in model.graph.initializer:
            if init.HasField("raw_data") and int(np.prod(init.dims or [1])) >= _BIG:
                kept[init.name] = init.raw_data
                init.ClearField("raw_data")
        yield kept
    finally:
        for init in model.graph.initializer:
            if init.name in kept:
                init.raw_data = kept[init.name]


def value_types(model) -> dict:
    """{tensor name: ONNX elem type} from shape inference, initializers and Constant nodes."""
    import onnx

    with weightless(model):
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    types = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    for i in model.graph.initializer:
        types[i.name] = i.data_type
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    types[n.output[0]] = a.t.data_type
    return types


def _graph_maps(model):
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers = defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            if i:
                consumers[i].append(n)
    return producer, consumers


def _const_names(model) -> set:
    names = {i.name for i in model.graph.initializer}
    return names | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}


def norm_islands(model) -> dict:
    """{node name: "norm"} for RMSNorm / LayerNorm subgraphs, found structurally:
    ReduceMean(Pow(x, 2) | Mul(x, x)) -> Add(eps) -> Sqrt -> Reciprocal|Div -> Mul(x, .) -> Mul(weight)
    (+ the mean-subtracting LayerNorm form), and LayerNormalization / RMSNormalization ops."""
    producer, consumers = _graph_maps(model)
    consts = _const_names(model)
    out = {}
    for n in model.graph.node:
        if n.op_type in ("LayerNormalization", "RMSNormalization", "SimplifiedLayerNormalization"):
            out[n.name] = "norm"
            continue
        sq = producer.get(n.input[0]) if n.op_type == "ReduceMean" else None
        if sq is None or not ((sq.op_type == "Pow" and sq.input[1] in consts)
                              or (sq.op_type == "Mul" and sq.input[0] == sq.input[1])):
            continue
        island = [sq, n]
        sub = producer.get(sq.input[0])
        if sub is not None and sub.op_type == "Sub":  # LayerNorm: x - mean(x)
            island.append(sub)
            mean = producer.get(sub.input[1])
            if mean is not None and mean.op_type == "ReduceMean":
                island.append(mean)
        cur = n
        for _ in range(8):  # Add(eps) -> Sqrt -> Reciprocal/Div -> Mul(x, r) -> Mul/Add(weight, bias)
            nxt = consumers.get(cur.output[0], [])
            if len(nxt) != 1 or nxt[0].op_type not in ("Add", "Sqrt", "Reciprocal", "Div", "Mul", "Cast"):
                break
            cur = nxt[0]
            island.append(cur)
            if cur.op_type == "Mul" and any(i in consts for i in cur.input):
                after = consumers.get(cur.output[0], [])
                if len(after) == 1 and after[0].op_type == "Add" and any(i in consts for i in after[0].input):
                    island.append(after[0])  # LayerNorm bias
                break
        for m in island:
            out[m.name] = "norm"
    return out


def softmax_islands(model) -> dict:
    """{node name: "softmax"}: each Softmax and the elementwise ops between the score MatMul and it."""
    producer, _ = _graph_maps(model)
    out = {}
    for n in model.graph.node:
        if n.op_type != "Softmax":
            continue
        out[n.name] = "softmax"
        cur = producer.get(n.input[0])
        while cur is not None and cur.op_type in ("Add", "Mul", "Div", "Where", "Cast"):
            out[cur.name] = "softmax"
            cur = next((producer[i] for i in cur.input if i in producer
                        and producer[i].op_type in ("Add", "Mul", "Div", "MatMul")), None)
            if cur is not None and cur.op_type == "MatMul":
                break
    return out


def score_islands(model) -> dict:
    """{node name: "scores"}: the q/k projection MatMuls and every node their float outputs reach up to and
    including the score MatMul (bias Add, RoPE, repeat_kv, the scale): Qwen2's large q/k lose the logits when
    rounded to 16 bits (Arch.fp32_scores, l2v.model.precision). Shape arithmetic (int outputs) is not followed."""
    from l2v.quantize.graph import linear_matmuls

    _, consumers = _graph_maps(model)
    types = value_types(model)
    starts = [n for n, mod in linear_matmuls(model) if mod.rsplit(".", 1)[-1] in ("q_proj", "k_proj")]
    out = {n.name: "scores" for n in starts}
    stack = [o for n in starts for o in n.output]
    while stack:
        for c in consumers.get(stack.pop(), []):
            if c.name in out:
                continue
            out[c.name] = "scores"
            if c.op_type != "MatMul":  # the score MatMul ends the island (the softmax island follows)
                stack.extend(o for o in c.output if o and types.get(o, FLOAT) in (FLOAT, FLOAT16, BFLOAT16))
    return out


def classify(model, fp32_residual: bool = False, fp32_scores: bool = False) -> dict:
    """{node name: precision class}: "low"; "fp32:norm", "fp32:softmax", "fp32:scores" (with `fp32_scores`:
    q/k projections up to the score MatMul), "fp32:tail" (after the last norm:
    pooling, normalisation); "fp32:side" (independent of the hidden states: masks, positions, rotary
    tables, shapes); "fp32:residual" (with `fp32_residual`). The hidden states start at the
    token-embedding Gather (a Gather from a 2-D initializer)."""
    from l2v.errors import ValidationError

    producer, consumers = _graph_maps(model)
    inits = {i.name: i for i in model.graph.initializer}
    emb = [n for n in model.graph.node if n.op_type == "Gather" and n.input[0] in inits and len(inits[n.input[0]].dims) == 2]
    if not emb:
        raise ValidationError("the graph has no token-embedding Gather: cannot place the fp32 islands")
    hot, stack = {emb[0].name}, [emb[0].output[0]]
    while stack:
        for c in consumers.get(stack.pop(), []):
            if c.name not in hot:
                hot.add(c.name)
                stack.extend(o for o in c.output if o)
    islands = {**(score_islands(model) if fp32_scores else {}), **norm_islands(model), **softmax_islands(model)}
    order = {n.name: i for i, n in enumerate(model.graph.node)}
    norms = [n for n in model.graph.node if islands.get(n.name) == "norm"]
    tail = set()
    if norms:
        stack = list(max(norms, key=lambda n: order[n.name]).output)
        while stack:
            for c in consumers.get(stack.pop(), []):
                if c.name not in tail and islands.get(c.name) != "norm":
                    tail.add(c.name)
                    stack.extend(c.output)
    out = {}
    for n in model.graph.node:
        if n.name in tail:
            out[n.name] = "fp32:tail"
        elif n.name in islands:
            out[n.name] = f"fp32:{islands[n.name]}"
        else:
            out[n.name] = "low" if n.name in hot else "fp32:side"
    if fp32_residual:
        for n in model.graph.node:  # residual Adds: low Adds read by the next norm island
            if n.op_type == "Add" and out[n.name] == "low" and any(
                    out.get(r.name) == "fp32:norm" and r.op_type in ("Pow", "Mul", "Sub", "ReduceMean")
                    for r in consumers.get(n.output[0], [])):
                out[n.name] = "fp32:residual"
    return out


def low_tensor(arr: np.ndarray, name: str, low: int):
    """An initializer holding `arr` in fp16 or bf16."""
    from onnx import helper, numpy_helper

    if low == FLOAT16:
        return numpy_helper.from_array(arr.astype(np.float16), name)
    import ml_dtypes

    bits = arr.astype(np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)
    return helper.make_tensor(name, BFLOAT16, list(arr.shape), bits.tobytes(), raw=True)


class _Typer:
    """The rewrite of `to_strongly_typed`: one Cast per (tensor, direction), low copies of initializers
    read by both sides."""

    def __init__(self, model, low: str, classes: dict):
        from onnx import numpy_helper

        self.np = numpy_helper
        self.model, self.low, self.lt, self.classes = model, low, LOW_TYPES[low], classes
        self.types = value_types(model)
        self.inits = {i.name: i for i in model.graph.initializer}
        self.inputs = {i.name for i in model.graph.input}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.readers = defaultdict(set)
        for n in model.graph.node:
            for i in n.input:
                if i in self.inits and self.inits[i].data_type == FLOAT:
                    self.readers[i].add(self.side(n))
        self.casts, self.nodes, self.new_inits, self.copies = {}, [], [], {}

    def side(self, node) -> str:
        return "low" if self.classes.get(node.name) == "low" else "fp32"

    def produced_low(self, tensor: str) -> bool:
        p = self.producer.get(tensor)
        return p is not None and self.side(p) == "low"

    def cast(self, tensor: str, to_low: bool) -> str:
        from onnx import helper

        key = (tensor, to_low)
        if key not in self.casts:
            out = f"{tensor}__to_{self.low if to_low else 'fp32'}"
            self.nodes.append(helper.make_node("Cast", [tensor], [out], to=self.lt if to_low else FLOAT, name=out))
            self.casts[key] = out
        return self.casts[key]

    def low_init(self, name: str) -> str:
        if self.readers[name] == {"low"}:
            return name  # converted in place at the end
        if name not in self.copies:
            self.copies[name] = f"{name}__{self.low}"
            self.new_inits.append(low_tensor(self.np.to_array(self.inits[name]), self.copies[name], self.lt))
        return self.copies[name]

    def node(self, n) -> None:
        is_low = self.side(n) == "low"
        if n.op_type == "Cast":
            to = next(a for a in n.attribute if a.name == "to")
            if is_low and to.i == FLOAT:
                to.i = self.lt
            self.nodes.append(n)
            return
        for k, name in enumerate(n.input):
            if not name or self.types.get(name) != FLOAT:
                continue
            if name in self.inits:
                if is_low:
                    n.input[k] = self.low_init(name)
            elif name in self.inputs:
                if is_low:
                    n.input[k] = self.cast(name, True)
            elif is_low and not self.produced_low(name):
                n.input[k] = self.cast(name, True)
            elif not is_low and self.produced_low(name):
                n.input[k] = self.cast(name, False)
        if is_low:
            for a in n.attribute:
                if a.name == "value" and a.type == a.TENSOR and a.t.data_type == FLOAT:
                    a.t.CopyFrom(low_tensor(self.np.to_array(a.t), a.t.name, self.lt))
        self.nodes.append(n)

    def finish(self) -> int:
        from onnx import helper

        for name, readers in self.readers.items():
            if readers == {"low"}:
                self.inits[name].CopyFrom(low_tensor(self.np.to_array(self.inits[name]), name, self.lt))
        for o in self.model.graph.output:  # outputs keep fp32
            p = self.producer.get(o.name)
            if p is not None and self.side(p) == "low" and self.types.get(o.name) == FLOAT:
                raw = f"{o.name}__{self.low}"
                for k, x in enumerate(p.output):
                    if x == o.name:
                        p.output[k] = raw
                for m in self.nodes:
                    for k, x in enumerate(m.input):
                        if x == o.name:
                            m.input[k] = raw
                self.nodes.append(helper.make_node("Cast", [raw], [o.name], to=FLOAT, name=f"{o.name}__cast"))
        g = self.model.graph
        g.ClearField("node")
        g.node.extend(self.nodes)
        g.initializer.extend(self.new_inits)
        g.ClearField("value_info")
        return len(self.casts)


def to_strongly_typed(model, low: str = "fp16", classes: dict | None = None, keep_fp32_nodes=()) -> tuple:
    """Rewrite an fp32 graph in place into a strongly typed `low` ("fp16" | "bf16") graph with fp32
    islands; returns (model, facts). A Cast goes on every edge whose producer and consumer precisions
    differ; float initializers read only by low nodes are stored low (a low copy is added when fp32
    nodes read them too). `keep_fp32_nodes`: more node names forced to fp32."""
    from l2v.errors import ValidationError

    classes = dict(classes or classify(model))
    for name in keep_fp32_nodes:
        classes[name] = "fp32:forced"
    typer = _Typer(model, low, classes)
    for n in list(model.graph.node):
        typer.node(n)
    casts = typer.finish()
    errors = consistency_errors(model)
    if errors:
        raise ValidationError(f"internal: the {low} graph mixes float types: {'; '.join(errors[:3])}",
                              hint="report this model; use --quant fp16 meanwhile")
    return model, {"low": low, "casts": casts, "node_classes": dict(Counter(classes.values()))}


def consistency_errors(model) -> list[str]:
    """Ops whose float inputs disagree in type (a strongly typed TensorRT network rejects them)."""
    types = value_types(model)
    same = {"Add", "Sub", "Mul", "Div", "MatMul", "Where", "Max", "Min", "Concat", "Clip", "Sum", "Equal"}
    errs = []
    for n in model.graph.node:
        if n.op_type not in same:
            continue
        idx = range(1, 3) if n.op_type == "Where" else range(len(n.input))
        ft = {types.get(n.input[i]) for i in idx if n.input[i] and types.get(n.input[i]) in (FLOAT, FLOAT16, BFLOAT16)}
        if len(ft) > 1:
            errs.append(f"{n.op_type} {n.name}: float input types {sorted(ft)}")
    return errs
