"""Packed (padding-free) encoder engine for the PyTorch backend's GPU path.

`PackedEncoder` runs an HF decoder backbone (llama, mistral, qwen2, qwen3, gemma) on concatenated
token sequences delimited by `cu_seqlens`; `quantize_linears` swaps its projections to fp8 / int8 /
bf16 GEMMs. Names are imported lazily: importing this package imports nothing heavy.
"""
from __future__ import annotations

_EXPORTS = {
    "PackedEncoder": "l2v.engine.packed",
    "pack_sequences": "l2v.engine.packing",
    "length_sorted_batches": "l2v.engine.packing",
    "packed_pool": "l2v.engine.pooling",
    "varlen_attention_torch": "l2v.engine.attention",
    "QuantLinear": "l2v.engine.qlinear",
    "quantize_linears": "l2v.engine.quantize",
    "collect_act_amax": "l2v.engine.quantize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'l2v.engine' has no attribute {name!r}")
