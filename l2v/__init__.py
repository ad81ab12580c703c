"""l2v-export: turn a decoder LLM (+ LLM2Vec adapters) into a validated embedding artifact.

`import l2v` is lean: torch, onnxruntime, triton and tensorrt are imported only when used.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "export"]


def load(path, backend: str = "onnx", **kwargs):
    """Load an exported artifact directory and return an `Encoder` (see `l2v.runtime`)."""
    from l2v.runtime.encoder import load as _load

    return _load(path, backend=backend, **kwargs)


def export(model=None, out=None, **kwargs):
    """Export MODEL (+ adapters) to a validated artifact directory; see `l2v.export.pipeline`."""
    from l2v.export.pipeline import export_model

    return export_model(model, out, **kwargs)
