"""PyTorch-runtime variants with bitsandbytes (LLM.int8() and NF4), for users serving from PyTorch.

The offline step writes no file, only the variant (kind `bnb`, base `torch`, its config); the load step
(`l2v.runtime.bnb`) quantizes the artifact's merged torch/ weights when the variant is loaded. The gate
measures the same quantization applied to the model in memory.
"""
from __future__ import annotations

from pathlib import Path

from l2v.artifact import Variant
from l2v.quantize.config import BnbInt8Config, BnbNf4Config
from l2v.quantize.registry import Built, register


@register(BnbInt8Config, kind="bnb")
@register(BnbNf4Config, kind="bnb")
def build_bnb(ctx, cfg, tmp: Path) -> Built:
    import copy

    from l2v.runtime.bnb import BnbBackend, apply_bnb, import_bnb

    import_bnb()
    model = apply_bnb(copy.deepcopy(ctx.torch_model), cfg.to_dict())
    dtype = "int8" if isinstance(cfg, BnbInt8Config) else cfg.quant_type
    variant = Variant(kind="bnb", dtype=dtype, base="torch", facts={"weights": "torch/ (quantized at load)"})
    return Built(variant, BnbBackend.from_model(model, precision=dtype))
