"""Checking a bf16 graph where ONNX Runtime cannot run it.

ORT's CPU provider has no bf16 kernels (measured with ORT 1.32: `NOT_IMPLEMENTED: Could not find an
implementation for Where(16)`), so a bf16 graph is validated:
- on CUDA, as it is, when onnxruntime-gpu is installed (`cuda_available()`);
- otherwise by `as_fp32(src, dst)`: the same graph with every bf16 tensor type, Cast target and constant
  turned into fp32, its weights the bf16 values exactly (bf16 -> fp32 is exact). This checks the graph
  and its bf16 weights against PyTorch fp32, not bf16 arithmetic; the manifest says which check ran.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

CHECK_CUDA = "bf16 graph on ONNX Runtime CUDA"
CHECK_CPU = "bf16 weights with fp32 compute on ONNX Runtime CPU (its CPU provider has no bf16 kernels)"


def cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _fp32_tensor(tensor):
    """A lazy fp32 copy of a bf16 initializer, read when the writer reaches it."""
    import onnx_ir as ir

    def convert():
        arr = tensor.numpy()
        return ir.Tensor(np.asarray(arr).astype(np.float32), name=tensor.name)

    return ir.LazyTensor(convert, dtype=ir.DataType.FLOAT, shape=tensor.shape, name=tensor.name)


def as_fp32(src: Path, dst: Path) -> list[str]:
    """Write `dst` (+ external data): `src` with bf16 replaced by fp32 everywhere. Returns the file names."""
    import onnx_ir as ir

    bf16, f32 = ir.DataType.BFLOAT16, ir.DataType.FLOAT
    model = ir.load(str(src))
    g = model.graph
    for v in list(g.initializers.values()):
        if v.dtype == bf16:
            v.const_value = _fp32_tensor(v.const_value)
    for node in ir.traversal.RecursiveGraphIterator(g):
        for attr in node.attributes.values():
            if attr.name == "to" and attr.value == bf16.value:
                node.attributes["to"] = ir.AttrInt64("to", f32.value)
            elif attr.type == ir.AttributeType.TENSOR and attr.value.dtype == bf16:
                node.attributes[attr.name] = ir.AttrTensor(attr.name, ir.Tensor(attr.value.numpy().astype(np.float32)))
        for out in node.outputs:
            if out.dtype == bf16:
                out.dtype = f32
    for v in [*g.inputs, *g.outputs]:
        if v.dtype == bf16:
            v.dtype = f32
    dst = Path(dst)
    ir.save(model, str(dst), external_data=f"{dst.name}.data", size_threshold_bytes=1024)
    return [dst.name, f"{dst.name}.data"]
