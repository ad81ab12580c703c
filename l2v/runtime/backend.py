"""One backend interface: every variant kind registers the class that runs it on a `Batch`.

    backend = open_backend(artifact, "w4")          # the class registered for the variant's kind
    vectors = backend.run(batch)                    # np.float32 [B, dim]

A *backend* is the runtime that executes a variant (`onnx`: ONNX Runtime; `torch`: PyTorch); a variant's
*kind* (its stored format) decides which backend class loads it. Adding a kind is one registration:
`register("openvino", "my_pkg.runtime:OpenVinoBackend")` (a lazy "module:Class" string keeps `import l2v` lean).
The runtime, the quantization gate and the benchmark all run variants through this interface.
"""
from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from l2v.errors import InputError
from l2v.text.batch import Batch

DEVICES = ("cpu", "cuda")

# variant kind -> "module:Class" of its Backend (imported on first use)
REGISTRY: dict[str, str] = {
    "onnx": "l2v.runtime.onnx:OnnxBackend",
    "torch": "l2v.runtime.torch:TorchBackend",
    "bnb": "l2v.runtime.bnb:BnbBackend",
    "trt": "l2v.runtime.trt:TrtBackend",
    "openvino": "l2v.runtime.openvino:OpenVINOBackend",
}


@dataclass(frozen=True)
class RunOptions:
    """How to run: `device` cpu|cuda; `threads` intra-op threads (None: the library's choice); ONNX
    Runtime `providers`; `engine`: how the backend runs (torch: padded|packed, default packed on CUDA;
    trt variants: tensorrt|onnxruntime|auto, see runtime/trt.py);
    `spinning=False` stops idle ONNX Runtime threads from spinning (measurements on shared machines);
    `low_memory`: ONNX Runtime's low-memory CPU session for fp16/bf16 graphs (l2v.runtime.onnx.low_memory_options:
    the weights stay memory-mapped fp16 instead of an fp32 copy, at ~2x the run time); None: when the fp32
    copy would not fit (l2v.runtime.onnx.needs_low_memory)."""
    device: str = "cpu"
    threads: int | None = None
    providers: tuple | None = None
    engine: str | None = None
    spinning: bool = True
    low_memory: bool | None = None

    def __post_init__(self):
        if self.device not in DEVICES:
            raise InputError(f"device {self.device!r} is not supported", hint="use 'cpu' or 'cuda'")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise InputError(f"threads {self.threads!r} must be a positive integer (or None)")
        if self.low_memory not in (None, True, False):
            raise InputError(f"low_memory {self.low_memory!r} must be True, False or None (automatic)")


class Backend(abc.ABC):
    """Runs one variant: `run(batch) -> np.float32 [B, dim]`, safe to call from several threads."""

    name: ClassVar[str]  # the runtime: "onnx" | "torch" | ...
    precision: str = "fp32"  # the arithmetic dtype (picks the matmul peak in the benchmark)

    @classmethod
    @abc.abstractmethod
    def open(cls, artifact, variant, options: RunOptions, root: Path | None = None) -> "Backend":
        """Load `variant` (a `Variant` of `artifact`); its files live under `root` (default the artifact's)."""

    @abc.abstractmethod
    def run(self, batch: Batch) -> np.ndarray:
        ...

    def runtime_precisions(self) -> dict | None:
        """{"LayerType:precision": count} of what the runtime chose for this CPU's matmuls, where the runtime
        decides that per CPU (OpenVINO); None: the graph's own dtypes decide. `load` compares it with the
        build's `facts.runtime_precisions`."""
        return None

    def close(self) -> None:
        """Drop what the backend holds (sessions, weights)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def register(kind: str, target: str | type) -> None:
    """Make variants of `kind` load with `target` (a Backend class or its "module:Class" path)."""
    REGISTRY[kind] = target


def backend_class(kind: str) -> type[Backend]:
    target = REGISTRY.get(kind)
    if target is None:
        raise InputError(f"no backend is registered for variant kind {kind!r}",
                         hint=f"known kinds: {', '.join(REGISTRY)}; a newer l2v may be needed")
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        target = getattr(importlib.import_module(module), cls)
        REGISTRY[kind] = target
    return target


def open_backend(artifact, variant=None, options: RunOptions | None = None, root: Path | None = None) -> Backend:
    """The backend for `variant` (a name, a `Variant`, or None for the default), its files size-checked."""
    from l2v.artifact import Variant

    v = variant if isinstance(variant, Variant) else artifact.variant(variant)
    if root is None:
        artifact.check(v)
    return backend_class(v.kind).open(artifact, v, options or RunOptions(), root)
