"""Quantized variants of an exported artifact: one config dataclass + one registered handler per method.

    from l2v.quantize import quantize_artifact
    quantize_artifact("artifacts/smollm2", ["int8-smooth", "w4"], min_recall=0.9)

or `l2v-export MODEL --out DIR --quant int8-smooth --quant w4 --min-recall 0.9`, or for an existing
artifact `l2v-quantize DIR --quant auto --min-recall 0.95`. See docs/quantization.md.
Importing this package imports neither torch nor onnxruntime.
"""
from __future__ import annotations

from l2v.quantize.config import CONFIGS, QuantConfig, config_from_dict, parse_method
from l2v.quantize.plan import QuantPlan, plan_quantization

__all__ = ["CONFIGS", "QuantConfig", "QuantPlan", "config_from_dict", "parse_method", "plan_quantization",
           "quantize_artifact", "methods"]


_LAZY = {"quantize_artifact": "l2v.quantize.api"}  # its handlers import onnx/torch: loaded on first use


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'l2v.quantize' has no attribute {name!r}")


def methods() -> list[str]:
    from l2v.quantize.registry import methods as _m

    return list(_m())
