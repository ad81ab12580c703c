"""GPU kernels. Importing this package imports neither torch nor triton; `l2v.kernels.flash_attn`
(the Triton varlen flash attention) needs triton and raises `OptionalDependencyError` without it."""
from __future__ import annotations

__all__ = ["varlen_attention"]


def __getattr__(name):
    if name == "varlen_attention":
        from l2v.kernels.flash_attn import varlen_attention

        return varlen_attention
    raise AttributeError(f"module 'l2v.kernels' has no attribute {name!r}")
