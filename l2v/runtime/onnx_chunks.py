"""Run a big ONNX graph a slice of its weights at a time, so the process never maps them all.

    outs = run_chunked(path, batches, output, max_bytes=1 << 30)

The graph's nodes (topologically ordered, as every ONNX graph is) are cut into contiguous chunks of at most
`max_bytes` of initializers each (a chunk holds at least one node; an 8B decoder layer's fp16 weights are
0.4 GiB). Every chunk becomes a model of its own - its nodes, the initializers they read (still pointing into
the graph's external-data file) and, as inputs and outputs, the values that cross its borders - opened in
ONNX Runtime's low-memory session, run on every batch, and closed before the next opens. The values crossing
a border (the hidden states, position tables, masks) wait in memory between chunks, per batch. Each node runs
the same kernel on the same inputs as in the whole graph (the low-memory session fuses nothing), so the
outputs equal the whole graph's, while the mapped weights - what made the validation child's RSS the size of
the graph (8B: 13.97 GiB) - are one chunk's at a time, flat in depth.

Used by the ONNX Runtime child (l2v.runtime.onnx_child) for export validation and the recall gate of
streamed artifacts; `l2v.load` still opens the whole graph.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

def initializer_bytes(t) -> int:
    """Bytes of an initializer (TensorProto), external or not, without reading its data."""
    from onnx import TensorProto

    if t.data_location == TensorProto.EXTERNAL:
        return int({e.key: e.value for e in t.external_data}.get("length", 0))
    return len(t.raw_data)


def _has_subgraphs(node) -> bool:
    from onnx import AttributeProto

    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute)


def plan_chunks(graph, max_bytes: int) -> list[range]:
    """Contiguous node ranges, each reading at most `max_bytes` of initializers (or one node). A graph with
    control flow (subgraphs may read any outer value) stays one chunk."""
    nodes = list(graph.node)
    if any(_has_subgraphs(n) for n in nodes):
        return [range(0, len(nodes))]
    size = {t.name: initializer_bytes(t) for t in graph.initializer}
    chunks, start, held, seen = [], 0, 0, set()
    for i, node in enumerate(nodes):
        new = {x for x in node.input if x in size and x not in seen}
        add = sum(size[x] for x in new)
        if i > start and held + add > max_bytes:
            chunks.append(range(start, i))
            start, held, seen = i, 0, set()
            new = {x for x in node.input if x in size}
            add = sum(size[x] for x in new)
        held += add
        seen |= new
    chunks.append(range(start, len(nodes)))
    return chunks


def borders(graph, chunks: list[range]) -> list[tuple[list[str], list[str]]]:
    """[(inputs, outputs)] of every chunk: the values it reads that an earlier chunk (or the caller) made,
    and the values it makes that a later chunk reads or the graph returns."""
    nodes = list(graph.node)
    inits = {t.name for t in graph.initializer}
    last_use: dict[str, int] = {}
    for k, r in enumerate(chunks):
        for i in r:
            for x in nodes[i].input:
                if x:
                    last_use[x] = k
    graph_out = {o.name for o in graph.output}
    out = []
    for k, r in enumerate(chunks):
        made = [y for i in r for y in nodes[i].output if y]
        made_set = set(made)
        ins = list(dict.fromkeys(x for i in r for x in nodes[i].input
                                 if x and x not in made_set and x not in inits))
        outs = [y for y in made if y in graph_out or last_use.get(y, -1) > k]
        out.append((ins, outs))
    return out


def chunk_model(model, r: range, inputs: dict, outputs: list[str]) -> bytes:
    """The serialized model of nodes `r`: `inputs` {name: numpy dtype} in, `outputs` out (types inferred)."""
    import onnx
    from onnx import helper

    g = model.graph
    nodes = [g.node[i] for i in r]
    used = {x for n in nodes for x in n.input}
    graph = helper.make_graph(
        nodes, f"{g.name}_chunk",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), None)
         for n, dt in inputs.items()],
        [onnx.ValueInfoProto(name=n) for n in outputs],
        [t for t in g.initializer if t.name in used])
    m = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    m.functions.extend(model.functions)
    return m.SerializeToString()


def run_chunked(path, batches: list[dict], output: str, max_bytes: int, providers=None,
                on_chunk=None) -> list[np.ndarray]:
    """`output` of the graph at `path` for every batch (dicts of graph inputs), one chunk of weights mapped at a
    time. `on_chunk(k, n)` after each chunk (memory probes, progress)."""
    import onnx

    from l2v.runtime.onnx import session

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    chunks = plan_chunks(model.graph, max_bytes)
    edges = borders(model.graph, chunks)
    env = [dict(b) for b in batches]  # per batch: the values crossing the current border
    for k, (r, (ins, outs)) in enumerate(zip(chunks, edges)):
        data = chunk_model(model, r, {n: env[0][n].dtype for n in ins}, outs)
        sess = session(data, providers=providers, spinning=False, low_memory=True, data_dir=path.parent)
        del data
        for values in env:
            got = sess.run(outs, {n: values[n] for n in ins})
            values.update(zip(outs, got))
        del sess
        later = {x for _, (i2, _) in zip(chunks[k + 1:], edges[k + 1:]) for x in i2} | {output}
        for values in env:
            for name in [n for n in values if n not in later]:
                del values[name]
        if on_chunk:
            on_chunk(k + 1, len(chunks))
    return [values[output] for values in env]
