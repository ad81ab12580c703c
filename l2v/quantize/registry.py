"""The method registry: one handler per method name; dispatch is a dict lookup, never string tests.

A handler is `build(ctx, cfg, tmp_dir) -> dict` (manifest facts of the new variant, with "file" for ONNX
variants) registered with `@register(ConfigClass, backend=...)`. Handlers live in `onnx_methods.py`,
`smooth.py`, `weight_only.py`, `torch_methods.py` and `auto.py`; importing `l2v.quantize.registry`
does not import them (nor torch/onnxruntime) until a method is looked up.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from l2v.errors import InputError
from l2v.quantize.config import CONFIGS, QuantConfig

HANDLER_MODULES = ("onnx_methods", "smooth", "weight_only", "torch_methods", "auto")


@dataclass(frozen=True)
class Method:
    name: str
    config: type[QuantConfig]
    build: Callable
    backend: str = "onnx"  # "onnx": a new graph file; "torch": applied to torch/ weights at load
    calibrates: bool = False


REGISTRY: dict[str, Method] = {}


def register(config: type[QuantConfig], backend: str = "onnx", calibrates: bool = False):
    def deco(fn):
        REGISTRY[config.method] = Method(config.method, config, fn, backend, calibrates)
        return fn
    return deco


def _load_handlers() -> None:
    if len(REGISTRY) < len(CONFIGS):
        for mod in HANDLER_MODULES:
            importlib.import_module(f"l2v.quantize.{mod}")


def get(name: str) -> Method:
    _load_handlers()
    if name not in REGISTRY:
        raise InputError(f"unknown quantization method {name!r}", hint=f"use one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def methods() -> dict[str, Method]:
    _load_handlers()
    return dict(REGISTRY)
