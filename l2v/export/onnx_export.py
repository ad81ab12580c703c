"""Export an `EmbeddingModel` to ONNX with the dynamo exporter, and derive the fp16 variant."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from l2v.export.spec import TWO_GB, OnnxExportSpec


def parameter_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@contextlib.contextmanager
def _quiet_exporter(verbose: bool):
    """Silence the exporter's progress chatter unless verbose; restores logging and warnings after."""
    if verbose:
        yield
        return
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model, sample: dict, path: Path, spec: OnnxExportSpec, verbose: bool = False) -> dict:
    """Write `path` (+ `path.data` when the weights pass 2 GB). Returns facts for the manifest."""
    import torch

    model.eval()
    args = tuple(torch.as_tensor(sample[name]) for name in spec.inputs)
    external = parameter_bytes(model) >= TWO_GB
    with torch.no_grad(), _quiet_exporter(verbose):
        torch.onnx.export(
            model, args, str(path), dynamo=True, opset_version=spec.opset,
            input_names=list(spec.inputs), output_names=[spec.output],
            dynamic_shapes={n: s for n, s in spec.dynamic_shapes().items()},
            external_data=external, verbose=False,
        )
    return {"file": path.name, "external_data": external}


def convert_fp16(src: Path, dst: Path) -> dict:
    """fp16 weights and compute, fp32 inputs/outputs (ONNX Runtime's float16 converter)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    external = model.ByteSize() >= TWO_GB if not (src.parent / f"{src.name}.data").exists() else True
    m16 = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=external)
    onnx.save(m16, str(dst), save_as_external_data=external,
              location=f"{dst.name}.data" if external else None)
    return {"file": dst.name, "external_data": external}
