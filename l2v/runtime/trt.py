"""The `trt` backend: runs a `trt-*` variant (kind `trt`) as a TensorRT engine where TensorRT and a CUDA GPU
exist, and its ONNX graph on ONNX Runtime where they do not.

How it runs is `RunOptions.engine`:
- "tensorrt": the engine built for this GPU and TensorRT (`l2v-export --trt` or `l2v-build-trt DIR`); a
  missing `tensorrt` is an install hint, a missing engine says how to build one, an engine built for
  another GPU or TensorRT version is an error naming both (`l2v.load(dir, backend="trt")`);
- "onnxruntime" (or None): the variant's graph on ONNX Runtime: the Q/DQ graph's int8/fp8 arithmetic and
  the fp16 graph as they are, bf16 rounded in fp32 (l2v/trt/simulate.py) since the CPU provider has no
  bf16 kernels. This is what the recall gate measures (`l2v.load(dir, backend="onnx", variant=...)`);
- "auto": the engine when it can run here, else the graph on ONNX Runtime, saying so once per process
  and variant (`l2v.load(dir, variant="trt-int8")`).
"""
from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from l2v.errors import ArtifactError, InputError
from l2v.runtime.backend import Backend, RunOptions
from l2v.runtime.onnx import OnnxBackend
from l2v.text.batch import Batch

ENGINES = ("auto", "tensorrt", "onnxruntime")
_said: set = set()
_said_lock = threading.Lock()


def _say_once(key, msg: str) -> None:
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    print(f"l2v: {msg}", file=sys.stderr)


def _name(artifact, variant) -> str:
    return next((n for n, v in artifact.manifest.variants.items() if v is variant), variant.main.path)


def plan_record(variant):
    rec = next((r for r in variant.files if r.path.endswith(".plan.json")), None)
    if rec is None:
        raise ArtifactError("this trt variant lists no build plan (*.plan.json)", hint="re-export it (l2v-export --trt)")
    return rec


class TrtGraphBackend(OnnxBackend):
    """A trt variant's graph on ONNX Runtime (what TensorRT would compute, with these scales and types)."""

    simulates = "tensorrt"

    @classmethod
    def open(cls, artifact, variant, options: RunOptions, root: Path | None = None) -> "TrtGraphBackend":
        import onnx

        from l2v.artifact.files import resolve
        from l2v.runtime.onnx import providers_for, session
        from l2v.trt.simulate import simulate_bf16

        path = resolve(root or artifact.root, variant.main.path)
        g = artifact.manifest.graph
        if variant.dtype != "bf16":
            return cls.from_file(path, g.output, options, g.dim, variant.dtype)
        model = simulate_bf16(onnx.load(str(path)))
        if model.ByteSize() < (1 << 30):
            return cls(session(model, options.threads, providers_for(options), options.spinning), g.output, "bf16")
        with tempfile.TemporaryDirectory(prefix="l2v-bf16-") as d:  # protobuf's 2 GB limit: external data
            sim = Path(d) / "bf16_simulated.onnx"
            onnx.save(model, str(sim), save_as_external_data=True, location="sim.data")
            del model
            sess = session(sim, options.threads, providers_for(options), options.spinning)
        return cls(sess, g.output, "bf16")


class TrtBackend(Backend):
    """The engine of a trt variant (one execution context per profile, thread-safe)."""

    name = "trt"

    def __init__(self, runner, precision: str):
        self.runner, self.precision = runner, precision

    @classmethod
    def open(cls, artifact, variant, options: RunOptions, root: Path | None = None) -> Backend:
        from l2v.trt.engine import unavailable_reason

        mode = options.engine or "onnxruntime"
        if mode not in ENGINES:
            raise InputError(f"engine {mode!r} does not run a trt variant", hint=f"use one of {', '.join(ENGINES)}")
        engine = (variant.facts or {}).get("engine")
        if mode == "auto":
            reason = unavailable_reason() or (None if engine else "no engine has been built")
            if reason is None:
                mode = "tensorrt"
            else:
                name = _name(artifact, variant)
                how = "bf16 rounded in fp32" if variant.dtype == "bf16" else f"its {variant.dtype} arithmetic"
                _say_once((str(artifact.root), name),
                          f"{name}: TensorRT engine not used ({reason}); running its ONNX graph on ONNX Runtime "
                          f"({how}, as the recall gate measured it)")
                mode = "onnxruntime"
        if mode == "onnxruntime":
            return TrtGraphBackend.open(artifact, variant, options, root)
        return cls.open_engine(artifact, variant, root or artifact.root)

    @classmethod
    def open_engine(cls, artifact, variant, root: Path) -> "TrtBackend":
        from l2v.artifact.files import resolve
        from l2v.trt.engine import TrtRunner, tensorrt
        from l2v.trt.plan import read_plan

        tensorrt("running a trt variant's engine")
        built = (variant.facts or {}).get("engine")
        if not built:
            raise ArtifactError(f"{_name(artifact, variant)} has no TensorRT engine yet",
                                hint=f"build it on this GPU: l2v-build-trt {root}")
        plan = read_plan(resolve(root, plan_record(variant).path))
        return cls(TrtRunner(resolve(root, built["engine"]), plan, built), variant.dtype)

    def run(self, batch: Batch) -> np.ndarray:
        return self.runner({k: np.ascontiguousarray(batch[k]) for k in self.runner.plan.inputs})

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        self.runner = None
