"""Export an `EmbeddingModel` to ONNX with the dynamo exporter."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from l2v.export.spec import OnnxExportSpec
from l2v.quantize.graph import TWO_GB


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


def export_onnx(model, sample, path: Path, spec: OnnxExportSpec, verbose: bool = False) -> list[str]:
    """Write `path` (+ `path.data` when the weights pass 2 GB). Returns the file names."""
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
    return [path.name, f"{path.name}.data"] if external else [path.name]

