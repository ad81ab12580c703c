"""Quantized variants of an exported artifact: one config dataclass + one registered handler per method.

    from l2v.quantize import quantize_artifact
    quantize_artifact("artifacts/smollm2", ["int8-smooth", "w4"], min_recall=0.9)

or `l2v-export MODEL --out DIR --quant int8-smooth --quant w4 --min-recall 0.9`, or for an existing
artifact `python -m l2v.quantize DIR --quant auto --min-recall 0.95`. See docs/quantization.md.
Importing this package imports neither torch nor onnxruntime.
"""
from __future__ import annotations

from l2v.quantize.config import CONFIGS, QuantConfig, config_from_dict, parse_method

__all__ = ["CONFIGS", "QuantConfig", "config_from_dict", "parse_method", "quantize_artifact", "methods",
           "load_torch_variant"]


def quantize_artifact(artifact_dir, methods, **kwargs):
    """See `l2v.quantize.api.quantize_artifact`."""
    from l2v.quantize.api import quantize_artifact as _q

    return _q(artifact_dir, methods, **kwargs)


def methods() -> list[str]:
    from l2v.quantize.registry import methods as _m

    return list(_m())


def load_torch_variant(path, variant: str, device: str = "cpu"):
    from l2v.quantize.torch_methods import load_torch_variant as _l

    return _l(path, variant, device)
