"""Layer-streamed quantization of graphs whose weights live in external data (streamed exports, 7-8B).

The source graph is opened with onnx_ir without reading a weight; every projection MatMul is rewritten
before any weight is touched, and each new initializer is a lazy tensor computed from ONE source weight
(read with plain reads, never a memory map, so RSS holds only the weight at hand) when `onnx_ir.save`
writes it into the variant's external data. Memory: one weight in fp32 and its quantized form.

- w8 / w4: `com.microsoft.MatMulNBits`, RTN with ONNX Runtime's own block quantizer
  (`quantize_matmul_{4,8}bits`, what `MatMulNBitsQuantizer` runs) or HQQ (ORT's `HQQWeightOnlyQuantizer`,
  per weight); keep_8bit / keep_fp32 patterns as in the in-memory handler.
- int8-smooth: per-token W8A8 (the nodes of `w8a8.per_token_int8`) with the outlier channels from a
  calibration run one decoder layer at a time (`Context.act_stats`), the most sensitive layers kept,
  ranked layer-streamed (`sensitivity.rank_layers_layerwise`); kernel=nbits is w8 at accuracy level 4.
fp16 source graphs (no fp32 graph was written) are quantized from their fp16 weights; the activations
stay fp16 around the int8 path (Casts in and out).
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from l2v.artifact import variant_file
from l2v.quantize import graph as onnx_graph
from l2v.quantize import w8a8
from l2v.quantize.registry import Built

MS_DOMAIN = w8a8.MS_DOMAIN
CHUNK = 64 << 20


def applies(ctx) -> bool:
    """Quantize layer-streamed when the export streams (it hands over its layer-by-layer model), or the artifact
    was exported layer by layer (its resource plan says "stream"), or — an artifact with no plan recorded — its
    graph keeps the weights in external data and there are no torch/ weights. A model exported in memory whose
    fp32 graph merely passed the external-data size (Qwen2.5-0.5B: 1.98 GB) quantizes in memory, with every
    method."""
    if ctx.layerwise is not None:
        return True
    if not onnx_graph.has_external_data(ctx.source_path):
        return False
    path = (ctx.manifest.timings or {}).get("resource_plan", {}).get("path")
    return path == "stream" if path else not ctx.manifest.variants_of("torch")


# ---------------------------------------------------------------- reading weights without a memory map
def _np_dtype(dtype):
    import onnx_ir as ir

    if dtype == ir.DataType.BFLOAT16:
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype.numpy())


def read_array(tensor) -> np.ndarray:
    """An initializer's values; external data read with plain reads."""
    import onnx_ir as ir

    if not isinstance(tensor, ir.ExternalTensor):
        return np.asarray(tensor.numpy())
    buf = np.empty(tensor.length, dtype=np.uint8)
    with open(tensor.path, "rb", buffering=0) as fh:
        fh.seek(tensor.offset or 0)
        view, got = memoryview(buf), 0
        while got < tensor.length:
            n = fh.readinto(view[got:])
            if not n:
                raise OSError(f"{tensor.path} is truncated at {tensor.name!r}")
            got += n
    return buf.view(_np_dtype(tensor.dtype)).reshape(tuple(tensor.shape))


def _plain_copy(tensor):
    """A lazy stand-in for an external tensor that `onnx_ir.save` copies in chunks with plain reads."""
    import onnx_ir as ir

    class _Copy(ir.LazyTensor):
        def tofile(self, fh):
            with open(tensor.path, "rb", buffering=0) as src:
                src.seek(tensor.offset or 0)
                left = tensor.length
                while left:
                    block = src.read(min(CHUNK, left))
                    if not block:
                        raise OSError(f"{tensor.path} is truncated at {tensor.name!r}")
                    fh.write(block)
                    left -= len(block)

    return _Copy(lambda: ir.Tensor(read_array(tensor), name=tensor.name), dtype=tensor.dtype, shape=tensor.shape,
                 name=tensor.name)


def load_source(path: Path):
    """The source graph with every external initializer turned into a plain-read lazy copy."""
    import onnx_ir as ir

    model = ir.load(str(path))
    for v in model.graph.initializers.values():
        if isinstance(v.const_value, ir.ExternalTensor):
            v.const_value = _plain_copy(v.const_value)
    return model


# ---------------------------------------------------------------- the graph's projections
def module_of(node) -> str:
    """`backbone.layers.3.mlp.down_proj` from the exporter's name scopes (as graph.module_name)."""
    raw = node.metadata_props.get("pkg.torch.onnx.name_scopes")
    if raw:
        try:
            scopes = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            scopes = []
        if len(scopes) >= 2:
            return scopes[-2]
    return node.name or ""


def projections(model) -> list[tuple]:
    """[(MatMul node, module name, weight value)] for every MatMul whose B is a 2-D initializer."""
    g = model.graph
    out = []
    for node in g:
        if node.op_type == "MatMul" and node.domain in ("", "ai.onnx"):
            b = node.inputs[1]
            if b is not None and b.name in g.initializers and b.shape is not None and len(b.shape) == 2:
                out.append((node, module_of(node), b))
    return out


def _weight_source(value):
    """The source weight behind `value` (its lazy copy reads the original external tensor)."""
    tensor = value.const_value
    return lambda: read_array(tensor).astype(np.float32)


class _Cache:
    """The initializers made from one weight are written one after the other: compute once, keep the last."""

    def __init__(self):
        self.key, self.value = None, None

    def get(self, key, fn):
        if key != self.key:
            self.key, self.value = None, None
            self.value, self.key = fn(), key
        return self.value


def _lazy(cache: _Cache, key, fn, index: int, name: str, dtype, shape):
    import onnx_ir as ir

    return ir.LazyTensor(lambda: ir.Tensor(cache.get(key, fn)[index], name=name), dtype=dtype, shape=ir.Shape(shape),
                         name=name)


def _replace(g, node, new_nodes: list, out_value) -> None:
    """Put `new_nodes` where `node` was; uses of node's output now read `out_value`."""
    import onnx_ir as ir

    g.insert_before(node, new_nodes)
    old = node.outputs[0]
    out_value.shape, out_value.type = old.shape, old.type
    ir.convenience.replace_all_uses_with(old, out_value)
    if old in g.outputs:
        g.outputs[g.outputs.index(old)] = out_value
    g.remove(node, safe=True)


def _const(g, name: str, array: np.ndarray):
    import onnx_ir as ir

    v = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                 const_value=ir.Tensor(array, name=name))
    g.register_initializer(v)
    return v


def _initializer(g, name: str, lazy):
    import onnx_ir as ir

    v = ir.Value(name=name, shape=lazy.shape, type=ir.TensorType(lazy.dtype), const_value=lazy)
    g.register_initializer(v)
    return v


# ---------------------------------------------------------------- w8 / w4: MatMulNBits
def block_quantize(w_kn: np.ndarray, bits: int, block: int, symmetric: bool):
    """RTN as ORT's `DefaultWeightOnlyQuantizer.qbits_block_quant` (QOperator): (packed, scales, zp)."""
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits, quantize_matmul_8bits

    k, n = w_kn.shape
    kpack = 8 // bits
    k_blocks = (k + block - 1) // block
    if k_blocks * block != k:
        w_kn = np.pad(w_kn, ((0, k_blocks * block - k), (0, 0)))
    w_kn = np.ascontiguousarray(w_kn, dtype=np.float32)
    packed = np.zeros((n, k_blocks, (block + kpack - 1) // kpack), dtype=np.uint8)
    zp = np.zeros((n, (k_blocks + kpack - 1) // kpack), dtype=np.uint8)
    scales = np.zeros((n, k_blocks), dtype=np.float32)
    (quantize_matmul_8bits if bits == 8 else quantize_matmul_4bits)(packed, w_kn, scales, zp, block, n, k, symmetric)
    return packed, scales, zp


def hqq_quantize(w_kn: np.ndarray, bits: int, block: int):
    """HQQ as ORT's `HQQWeightOnlyQuantizer.quantize` does it for one weight: (packed, scales, zero points)."""
    import torch
    from onnxruntime.quantization.matmul_nbits_quantizer import (HQQWeightOnlyQuantConfig,
                                                                  HQQWeightOnlyQuantizer)

    q = HQQWeightOnlyQuantizer(HQQWeightOnlyQuantConfig(block_size=block, bits=bits))
    w = torch.from_numpy(np.ascontiguousarray(w_kn, dtype=np.float32))
    wq, scales, zeros = q.quantize_internal(w.T, bits=bits, group_size=block)
    wq = wq.contiguous()
    packed = torch.zeros((wq.shape[0], wq.shape[1] // (8 // bits)), dtype=torch.uint8)
    q.pack_on_row_fast_248bit(packed, wq, bits)
    k, n = w_kn.shape
    k_blocks = (k + block - 1) // block
    return (packed.numpy().reshape(n, k_blocks, block * bits // 8), scales.contiguous().numpy().reshape(-1),
            zeros.contiguous().numpy().reshape(-1))


def nbits_rewrite(model, chosen: list[tuple], bits_of, block: int, symmetric: bool, accuracy_level: int,
                  algorithm: str = "rtn") -> int:
    """MatMul -> MatMulNBits for each (node, module, weight) in `chosen`; returns how many."""
    import onnx_ir as ir

    g = model.graph
    cache = _Cache()
    for node, module, w in chosen:
        bits = bits_of(module)
        k, n = int(w.shape[0]), int(w.shape[1])
        k_blocks = (k + block - 1) // block
        # int8 activations (accuracy_level 4) from an fp16/bf16 graph: the MatMulNBits runs on fp32 inputs,
        # Casts in and out. With fp16 inputs ORT 1.32's CPU kernel gave wrong outputs (mean cos 0.25 vs the
        # fp16 graph on a 2-layer Llama) in sessions without the extended optimizations (the low-memory one).
        widen = accuracy_level == 4 and w.dtype in (ir.DataType.FLOAT16, ir.DataType.BFLOAT16)
        scale_dtype = ir.DataType.FLOAT if widen else w.dtype  # scales (and HQQ's zero points): A's type
        np_scale = _np_dtype(scale_dtype)
        read = _weight_source(w)
        hqq = algorithm == "hqq" and bits == 4

        def compute(read=read, bits=bits, hqq=hqq, np_scale=np_scale):
            w_kn = read()
            if hqq:
                packed, scales, zeros = hqq_quantize(w_kn, bits, block)
                return packed, scales.astype(np_scale), zeros.astype(np_scale)
            packed, scales, zp = block_quantize(w_kn, bits, block, symmetric)
            return packed, scales.astype(np_scale), zp

        key = w.name
        pre = [ir.node("Cast", [node.inputs[0]], {"to": int(ir.DataType.FLOAT)}, name=f"{node.name}_a32")] if widen else []
        inputs = [pre[0].outputs[0] if widen else node.inputs[0]]
        inputs.append(_initializer(g, f"{w.name}_Q{bits}", _lazy(cache, key, compute, 0, f"{w.name}_Q{bits}",
                                                                 ir.DataType.UINT8, (n, k_blocks, block * bits // 8))))
        inputs.append(_initializer(g, f"{w.name}_scales", _lazy(cache, key, compute, 1, f"{w.name}_scales",
                                                                scale_dtype, (n, k_blocks) if not hqq else (n * k_blocks,))))
        if hqq:
            inputs.append(_initializer(g, f"{w.name}_zero_points", _lazy(cache, key, compute, 2, f"{w.name}_zero_points",
                                                                         scale_dtype, (n * k_blocks,))))
        elif not symmetric:
            kpack = 8 // bits
            inputs.append(_initializer(g, f"{w.name}_zero_points", _lazy(cache, key, compute, 2, f"{w.name}_zero_points",
                                                                         ir.DataType.UINT8,
                                                                         (n, (k_blocks + kpack - 1) // kpack))))
        attrs = {"K": k, "N": n, "bits": bits, "block_size": block}
        if accuracy_level:
            attrs["accuracy_level"] = accuracy_level
        new = ir.node("MatMulNBits", inputs, attrs, domain=MS_DOMAIN, name=f"{node.name}_Q{bits}",
                      metadata_props=dict(node.metadata_props))
        nodes = pre + [new]
        if widen:
            nodes.append(ir.node("Cast", [new.outputs[0]], {"to": int(w.dtype)}, name=f"{node.name}_y16"))
        for nd in nodes:
            nd.metadata_props.update(node.metadata_props)
        _replace(g, node, nodes, nodes[-1].outputs[0])
        if not any(True for _ in w.uses()):
            g.initializers.pop(w.name)
    model.opset_imports.setdefault(MS_DOMAIN, 1)
    return len(chosen)


# ---------------------------------------------------------------- int8-smooth: per-token W8A8
class _Shared:
    """w8a8's shared constants, each registered in the graph on its first use."""

    def __init__(self, g):
        self.g = g

    def __getitem__(self, name: str):
        v = self.g.initializers.get(name)
        return v if v is not None else _const(self.g, name, w8a8.CONSTANTS[name])


def _token_quant(g, p: str, x, width: int, fused: bool) -> tuple[list, object, object]:
    """w8a8's per-token uint8 quantization of `x` [..., width] (its graph form): (nodes, x_q, s_x)."""
    import onnx_ir as ir

    c = _Shared(g)
    act = [ir.node("Abs", [x], name=f"{p}_abs")]
    act.append(ir.node("ReduceMax", [act[-1].outputs[0], c["l2v_pt_axes"]], {"keepdims": 1}, name=f"{p}_amax"))
    act.append(ir.node("Max", [act[-1].outputs[0], c["l2v_pt_eps"]], name=f"{p}_max"))
    act.append(ir.node("Mul", [act[-1].outputs[0], c["l2v_pt_inv127"]], name=f"{p}_scale"))
    scale = act[-1].outputs[0]
    if not fused:
        act.append(ir.node("Div", [x, scale], name=f"{p}_div"))
        act.append(ir.node("Round", [act[-1].outputs[0]], name=f"{p}_round"))
        act.append(ir.node("Add", [act[-1].outputs[0], c["l2v_pt_128f"]], name=f"{p}_shift"))
        act.append(ir.node("Cast", [act[-1].outputs[0]], {"to": int(ir.DataType.UINT8)}, name=f"{p}_q"))
        return act, act[-1].outputs[0], scale
    rows = _const(g, f"{p}_rows", np.array([-1, width], dtype=np.int64))
    x2 = ir.node("Reshape", [x, rows], name=f"{p}_x2")
    s1 = ir.node("Reshape", [scale, c["l2v_pt_flat"]], name=f"{p}_s1")
    n = ir.node("Shape", [s1.outputs[0]], name=f"{p}_n")
    zp = ir.node("Expand", [c["l2v_pt_zp"], n.outputs[0]], name=f"{p}_zp")
    q2 = ir.node("QuantizeLinear", [x2.outputs[0], s1.outputs[0], zp.outputs[0]], {"axis": 0}, name=f"{p}_q2")
    shape = ir.node("Shape", [x], name=f"{p}_shape")
    q = ir.node("Reshape", [q2.outputs[0], shape.outputs[0]], name=f"{p}_q")
    act += [x2, s1, n, zp, q2, shape, q]
    return act, q.outputs[0], scale


def _token_matmul(g, name: str, o: str, q, wq, ws, scale, fused: bool) -> list:
    """w8a8's y = (x_q - 128) @ W_q * s_x * s_w (its graph form)."""
    import onnx_ir as ir

    c = _Shared(g)
    zp = c["l2v_pt_zp"]
    if fused:
        mm = ir.node("MatMulIntegerToFloat", [q, wq, c["l2v_pt_one"], ws, zp], domain=MS_DOMAIN, name=name)
        return [mm, ir.node("Mul", [mm.outputs[0], scale], name=f"{o}_mulx")]
    nodes = [ir.node("MatMulInteger", [q, wq, zp], name=name)]
    nodes.append(ir.node("Cast", [nodes[-1].outputs[0]], {"to": int(ir.DataType.FLOAT)}, name=f"{o}_cast"))
    nodes.append(ir.node("Mul", [nodes[-1].outputs[0], scale], name=f"{o}_mulx"))
    nodes.append(ir.node("Mul", [nodes[-1].outputs[0], ws], name=f"{o}_mulw"))
    return nodes


def per_token_int8(model, chosen: list[tuple], outliers: dict, fused: bool = True, reduce_range: bool = False) -> int:
    """The nodes of `w8a8.per_token_int8` for each projection in `chosen`, grouped by input tensor;
    `outliers`: {input value name: channel indices kept in fp32}; `fused`: w8a8's graph form;
    `reduce_range`: 7-bit weights (w8a8.quantize_weight).
    Returns how many MatMuls."""
    import onnx_ir as ir

    from l2v.quantize.w8a8 import quantize_weight

    g = model.graph
    cache = _Cache()
    groups: dict[str, list] = {}
    for item in chosen:
        groups.setdefault(item[0].inputs[0].name, []).append(item)
    if not groups:  # every projection kept in fp32: no shared constants either
        return 0
    if fused:
        model.opset_imports.setdefault(MS_DOMAIN, 1)
    f32, f16 = ir.DataType.FLOAT, ir.DataType.FLOAT16
    for gi, (xname, items) in enumerate(groups.items()):
        p = f"l2v_pt{gi}"
        x = items[0][0].inputs[0]
        half = items[0][2].dtype == f16
        pre = []
        if half:
            pre.append(ir.node("Cast", [x], {"to": int(f32)}, name=f"{p}_x32"))
            x = pre[-1].outputs[0]
        idx = np.asarray(outliers.get(xname, []), dtype=np.int64)
        xq, xo = x, None
        width = int(items[0][2].shape[0])
        if idx.size:
            keep = np.ones(width, dtype=np.float32)
            keep[idx] = 0.0
            pre.append(ir.node("Mul", [x, _const(g, f"{p}_keep", keep)], name=f"{p}_xr"))
            pre.append(ir.node("Gather", [x, _const(g, f"{p}_oidx", idx)], {"axis": -1}, name=f"{p}_xo"))
            xq, xo = pre[-2].outputs[0], pre[-1].outputs[0]
        act, q, scale = _token_quant(g, p, xq, width, fused)
        first = True
        for j, (node, module, w) in enumerate(items):
            o = f"{p}_{j}"
            k, n = int(w.shape[0]), int(w.shape[1])
            read = _weight_source(w)

            def compute(read=read, idx=idx):
                wf = read()
                w_int = wf
                if idx.size:
                    w_int = wf.copy()
                    w_int[idx] = 0.0
                wq, ws = quantize_weight(w_int, reduce_range)  # w8a8's: symmetric per output channel
                return wq, ws, np.ascontiguousarray(wf[idx]) if idx.size else None

            key = w.name
            wq = _initializer(g, f"{w.name}_l2v_q", _lazy(cache, key, compute, 0, f"{w.name}_l2v_q", ir.DataType.INT8, (k, n)))
            ws = _initializer(g, f"{w.name}_l2v_s", _lazy(cache, key, compute, 1, f"{w.name}_l2v_s", f32, (n,)))
            nodes = (pre + act) if first else []
            first = False
            nodes += _token_matmul(g, f"{node.name}_l2v_mmi", o, q, wq, ws, scale, fused)
            if xo is not None:
                wo = _initializer(g, f"{w.name}_l2v_wo", _lazy(cache, key, compute, 2, f"{w.name}_l2v_wo", f32,
                                                                (int(idx.size), n)))
                yq = nodes[-1].outputs[0]
                nodes.append(ir.node("MatMul", [xo, wo], name=f"{o}_mmo"))
                nodes.append(ir.node("Add", [yq, nodes[-1].outputs[0]], name=f"{o}_add"))
            if half:
                nodes.append(ir.node("Cast", [nodes[-1].outputs[0]], {"to": int(f16)}, name=f"{o}_y16"))
            for nd in nodes:
                nd.metadata_props.update(node.metadata_props)
            _replace(g, node, nodes, nodes[-1].outputs[0])
            if not any(True for _ in w.uses()):
                g.initializers.pop(w.name)
    return sum(len(v) for v in groups.values())


# ---------------------------------------------------------------- handlers' streamed bodies
def finish(model, tmp: Path, cfg, dtype: str, **facts) -> Built:
    """Save the rewritten graph (external data, page-aligned) under the variant's file name."""
    import onnx_ir as ir

    from l2v.quantize.onnx_methods import onnx_variant

    name = variant_file(cfg.variant)
    path = Path(tmp) / name
    ir.save(model, str(path), external_data=f"{name}.data", size_threshold_bytes=1024, alignment=4096)
    ops: dict = {}
    for node in model.graph:
        if node.op_type in onnx_graph.QUANT_OPS:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    opset = model.opset_imports.get("", 18)
    return Built(onnx_variant([name, f"{name}.data"], dtype, opset=opset, quant_ops=ops, streamed=True, **facts))


def build_weight_only(ctx, cfg, tmp: Path) -> Built:
    model = load_source(ctx.source_path)
    items = projections(model)
    keep = [it for it in items if cfg.keep_fp32 and onnx_graph.matches(it[1], cfg.keep_fp32)]
    chosen = [it for it in items if it not in keep]
    eight = {it[1] for it in chosen if cfg.keep_8bit and onnx_graph.matches(it[1], cfg.keep_8bit)}
    ctx.progress(f"{cfg.variant}: {len(chosen)} MatMuls to {cfg.bits}-bit blocks, written one weight at a time")
    nbits_rewrite(model, chosen, lambda m: 8 if m in eight else cfg.bits, cfg.block_size, cfg.symmetric,
                  cfg.accuracy_level, cfg.algorithm)
    act = "int8 per token and block (dynamic)" if cfg.accuracy_level == 4 else "as the source graph"
    facts = {"kept_8bit": len(eight)} if eight else {}
    return finish(model, tmp, cfg, f"int{cfg.bits}-weights", activations=act, kept_fp32=len(keep), **facts)


def build_int8_smooth(ctx, cfg, tmp: Path) -> Built:
    from l2v.model.arch import arch_of

    stats = ctx.act_stats(cfg.calib_texts, cfg.calib_max_length)
    model = load_source(ctx.source_path)
    items = projections(model)
    outliers = {}
    if cfg.kernel == "token" and cfg.outliers:
        outliers = outlier_channels(items, stats, cfg.outliers)
    facts = {"smoothed_matmuls": 0}
    if outliers:
        facts["outlier_channels"] = {"per_tensor": cfg.outliers, "tensors": len(outliers)}
    patterns = list(cfg.keep_fp32)
    if cfg.keep_sensitive:
        from l2v.quantize.smooth import ranking_kernel, sensitive_layers

        by_module = {mod: outliers[node.inputs[0].name] for node, mod, _ in items if node.inputs[0].name in outliers}
        ranked = sensitive_layers(ctx, cfg, {}, by_module, kernel=ranking_kernel(cfg))
        kept = [u for u, _ in ranked[:cfg.keep_sensitive]]
        arch = arch_of(ctx.config)
        patterns += [p for u in kept for p in arch.unit_patterns(u)]
        facts["kept_layers"] = kept
    chosen = [it for it in items if not (patterns and onnx_graph.matches(it[1], patterns))]
    ctx.progress(f"{cfg.variant}: {len(chosen)} MatMuls to int8 ({cfg.kernel}), written one weight at a time")
    if cfg.kernel == "token":
        per_token_int8(model, chosen, outliers, fused=cfg.fused, reduce_range=cfg.reduce_range)
        weights = "7-bit" if cfg.reduce_range else "int8"
        facts["activations"] = f"int8 per token (dynamic), weights {weights} per output channel" + (
            f", {cfg.outliers} outlier channels per tensor in fp32" if outliers else "")
    else:  # nbits
        nbits_rewrite(model, chosen, lambda m: 8, cfg.block_size, True, 4)
        facts["activations"] = f"int8 per token and per block of {cfg.block_size} (dynamic)"
    facts["kept_fp32"] = len(items) - len(chosen)
    return finish(model, tmp, cfg, "int8", **facts)


def outlier_channels(items: list[tuple], stats: dict, k: int) -> dict:
    """{input value name: the k channels with the largest calibration max|x|} per projection group."""
    groups: dict[str, list[str]] = {}
    for node, module, _ in items:
        groups.setdefault(node.inputs[0].name, []).append(module)
    out = {}
    for x, modules in groups.items():
        if all(m in stats for m in modules):
            amax = np.max([stats[m]["amax"] for m in modules], axis=0)
            out[x] = np.sort(np.argsort(-amax, kind="stable")[:min(k, amax.size)])
    return out
