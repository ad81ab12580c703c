"""The method registry: one handler per method name; dispatch is a dict lookup, never string tests.

A handler is `build(ctx, cfg, tmp_dir) -> Built` (the new `Variant`, its files written into tmp_dir, and
optionally a ready backend to gate it with), registered with `@register(ConfigClass, kind=...)`.
Handlers live in `onnx_methods.py`, `smooth.py`, `weight_only.py`, `torch_methods.py`, `auto.py` and
`trt_methods.py` and `openvino_methods.py`; importing `l2v.quantize.registry` does not import them (nor
torch/onnxruntime/openvino) until a method is used.
What a method needs is declared here, so a plan can be checked before any model is loaded.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from l2v.errors import InputError
from l2v.quantize.config import CONFIGS, QuantConfig

HANDLER_MODULES = ("onnx_methods", "smooth", "weight_only", "torch_methods", "auto", "trt_methods",
                   "openvino_methods", "ov_auto")
# what each method needs, known without importing its handler: {method: (kind, calibrates)}
NEEDS = {"fp16": ("onnx", False), "bf16": ("onnx", False), "int8-dynamic": ("onnx", False),
         "int8-smooth": ("onnx", True), "w8": ("onnx", True), "w4": ("onnx", True), "auto": ("onnx", True),
         "bnb-int8": ("bnb", False), "bnb-nf4": ("bnb", False),
         "trt-fp16": ("trt", False), "trt-bf16": ("trt", False), "trt-int8": ("trt", True), "trt-fp8": ("trt", True),
         "ov-fp32": ("openvino", False), "ov-bf16": ("openvino", False), "ov-int8": ("openvino", True),
         "ov-auto": ("openvino", True)}


@dataclass
class Built:
    """What a handler made: the variant (files relative to the handler's tmp dir) and, for variants
    whose files are not written (bnb), the backend the gate measures."""
    variant: object
    backend: object = None


@dataclass(frozen=True)
class Method:
    name: str
    config: type[QuantConfig]
    build: Callable
    kind: str = "onnx"  # the kind of variant it makes (l2v.runtime.backend.REGISTRY)
    calibrates: bool = False

    @property
    def needs_torch_weights_at_load(self) -> bool:
        return self.kind == "bnb"


REGISTRY: dict[str, Method] = {}


def register(config: type[QuantConfig], kind: str = "onnx", calibrates: bool = False):
    def deco(fn):
        if NEEDS.get(config.method, (kind, calibrates)) != (kind, calibrates):
            raise RuntimeError(f"internal: NEEDS[{config.method!r}] disagrees with its registration")
        REGISTRY[config.method] = Method(config.method, config, fn, kind, calibrates)
        return fn
    return deco


def needs(method: str) -> tuple[str, bool]:
    """(kind, calibrates) of a method, without importing handlers."""
    if method not in NEEDS:
        raise InputError(f"unknown quantization method {method!r}", hint=f"use one of {', '.join(CONFIGS)}")
    return NEEDS[method]


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
