"""ONNX Runtime's quantizers wrapped for the ONNX methods, and the simple methods: fp16, bf16, int8-dynamic.
`finish` turns a quantized graph into the new `Variant` (one place for every ONNX method)."""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np

from l2v.artifact import FileRecord, Variant, variant_file
from l2v.quantize import graph
from l2v.quantize.config import Bf16Config, Fp16Config, Int8DynamicConfig
from l2v.quantize.registry import Built, register


@contextlib.contextmanager
def quiet():
    """ORT's quantizers log every node at INFO on the root logger and print warnings; keep the CLI to one
    line per step. The levels are restored on exit, also on error."""
    loggers = [logging.getLogger(n) for n in ("onnxruntime.quantization.matmul_nbits_quantizer", "root", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def nbits_quantize(model, bits: int, block_size: int, symmetric: bool, accuracy_level: int,
                   exclude=(), algorithm: str = "rtn"):
    """MatMul (constant B) -> MatMulNBits (com.microsoft), blockwise along the input channels."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig, HQQWeightOnlyQuantConfig, MatMulNBitsQuantizer)

    if algorithm == "hqq":
        algo = HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits)
    else:
        algo = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=symmetric, bits=bits,
                                            accuracy_level=accuracy_level)
    with quiet():
        q = MatMulNBitsQuantizer(model, bits=bits, block_size=block_size, is_symmetric=symmetric,
                                 accuracy_level=accuracy_level, nodes_to_exclude=list(exclude), algo_config=algo)
        q.process()
    out = q.model.model
    if algorithm == "hqq":  # the HQQ config has no accuracy level; set it on the nodes it wrote
        for n in out.graph.node:
            if n.op_type == "MatMulNBits":
                _set_attr(n, "accuracy_level", accuracy_level)
    return out


def _set_attr(node, name: str, value: int) -> None:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            a.i = value
            return
    node.attribute.append(helper.make_attribute(name, value))


def dynamic_quantize(model, per_channel: bool = True, reduce_range: bool = False, exclude=()):
    """ORT dynamic quantization of the projection MatMuls: MatMulInteger + DynamicQuantizeLinear."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="l2v-q-") as d:
        src, dst = Path(d) / "in.onnx", Path(d) / "out.onnx"
        graph.save(model, src)
        with quiet():
            quantize_dynamic(str(src), str(dst), per_channel=per_channel, reduce_range=reduce_range,
                             weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                             nodes_to_exclude=list(exclude),
                             extra_options={"MatMulConstBOnly": True})
        return onnx.load(str(dst))


def onnx_variant(files: list[str], dtype: str, **facts) -> Variant:
    return Variant(kind="onnx", dtype=dtype, files=[FileRecord(f) for f in files], facts=facts)


def finish(model, tmp: Path, cfg, dtype: str, **facts) -> Built:
    """Save the quantized graph into `tmp` under the variant's file name; the new variant."""
    files = graph.save(model, Path(tmp) / variant_file(cfg.variant))
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return Built(onnx_variant(files, dtype, opset=opset, quant_ops=graph.quant_op_counts(model), **facts))


def convert_fp16(src: Path, dst: Path) -> list[str]:
    """fp16 weights and compute, fp32 inputs/outputs (ONNX Runtime's float16 converter). Returns the files."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = graph.load(src)
    external = graph.has_external_data(src) or model.ByteSize() >= graph.TWO_GB
    m16 = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=external)
    return graph.save(m16, dst, external=external)


@register(Fp16Config)
def build_fp16(ctx, cfg, tmp: Path) -> Built:
    files = convert_fp16(ctx.source_path, Path(tmp) / variant_file(cfg.variant))
    return Built(onnx_variant(files, "fp16", quant_ops={}))


@register(Bf16Config)
def build_bf16(ctx, cfg, tmp: Path) -> Built:
    """bf16 weights + a Cast to fp32 in front of each use. ORT's CPU provider has no bf16 MatMul, so
    the casts are folded at session start and compute stays fp32: this halves the file, not the time."""
    from onnx import TensorProto, helper, numpy_helper

    model = graph.load(ctx.source_path)
    casts = []
    for init in model.graph.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) < 2:
            continue
        arr = numpy_helper.to_array(init)
        bits = (arr.astype(np.float32).view(np.uint32) + 0x7FFF + ((arr.view(np.uint32) >> 16) & 1)) >> 16
        name = init.name
        bf = helper.make_tensor(f"{name}_bf16", TensorProto.BFLOAT16, list(arr.shape),
                                bits.astype(np.uint16).tobytes(), raw=True)
        init.CopyFrom(bf)
        casts.append(helper.make_node("Cast", [f"{name}_bf16"], [name], to=TensorProto.FLOAT, name=f"{name}_cast"))
    for c in reversed(casts):
        model.graph.node.insert(0, c)
    return finish(model, tmp, cfg, "bf16", compute="fp32 on CPUExecutionProvider (bf16 storage)")


@register(Int8DynamicConfig)
def build_int8_dynamic(ctx, cfg, tmp: Path) -> Built:
    model = graph.load(ctx.source_path)
    keep = graph.node_names(model, cfg.keep_fp32)
    q = dynamic_quantize(model, cfg.per_channel, cfg.reduce_range, keep)
    return finish(q, tmp, cfg, "int8", activations="uint8 per tensor (dynamic)", kept_fp32=len(keep))
