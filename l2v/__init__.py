"""l2v-export: turn a decoder LLM (+ LLM2Vec adapters) into a validated embedding artifact.

`import l2v` is lean: torch, onnxruntime, triton and tensorrt are imported only when used.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "export_model"]


def load(path, backend: str = "onnx", **kwargs):
    """Load an exported artifact directory and return an `Encoder` (see `l2v.runtime`)."""
    from l2v.runtime.encoder import load as _load

    return _load(path, backend=backend, **kwargs)


def export_model(model=None, out=None, **kwargs):
    """Export MODEL (+ adapters) to a validated artifact directory; see `l2v.export.pipeline`.

    (Named `export_model` because `l2v.export` is the sub-package.)
    """
    from l2v.export.pipeline import export_model as _export

    return _export(model, out, **kwargs)
