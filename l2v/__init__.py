"""l2v-export: turn a decoder LLM (+ LLM2Vec adapters) into a validated embedding artifact.

    import l2v
    l2v.export_model("path/to/model", "out_dir", adapters=["mntp", "simcse"])
    enc = l2v.load("out_dir")                     # see help(l2v.load) for every option
    vectors = enc.encode(["hello world"])

`import l2v` is lean: torch, onnxruntime, triton and tensorrt are imported only when used; `load` and
`export_model` are the real functions (`l2v.runtime.encoder.load`, `l2v.export.pipeline.export_model`),
imported on first access.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "export_model"]

_LAZY = {"load": "l2v.runtime.encoder", "export_model": "l2v.export.pipeline"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'l2v' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
