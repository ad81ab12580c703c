"""TensorRT engines: build one from a plan, check it belongs to this GPU and TensorRT, run it.

Runs only where `tensorrt` imports and a CUDA GPU exists (tests: the `trt` marker). Written against the
TensorRT 10/11 Python API: Builder, NetworkDefinitionCreationFlag.STRONGLY_TYPED (10.x; 11.x networks are
always strongly typed), OnnxParser.parse_from_file (reads external data beside the file, so graphs over
2 GiB work), IBuilderConfig (workspace pool, optimization level, one optimization profile per plan
profile), build_serialized_network, Runtime.deserialize_cuda_engine, and IExecutionContext
set_optimization_profile_async / set_input_shape / set_tensor_address / execute_async_v3. Device
buffers are torch CUDA tensors. tensorrt and torch are imported inside the functions.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from l2v.errors import ArtifactError, L2VError, OptionalDependencyError
from l2v.trt.plan import BuildPlan


class EngineMismatchError(ArtifactError):
    """The engine was built for another GPU (compute capability) or another TensorRT version."""


class EngineBuildError(L2VError):
    """TensorRT could not parse the graph or build the engine."""

    exit_code = 3


def tensorrt(purpose: str = "TensorRT engines"):
    """The `tensorrt` module, or OptionalDependencyError with the install hint."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise OptionalDependencyError("tensorrt", "trt", purpose) from e
    return trt


def unavailable_reason() -> str | None:
    """None when engines can be built and run here; else why not, in a few words."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt is not installed"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    return None


def here(device: int = 0) -> dict:
    """What an engine built now is tied to: TensorRT version, GPU name, compute capability."""
    import torch

    trt = tensorrt()
    major, minor = torch.cuda.get_device_capability(device)
    return {"tensorrt": trt.__version__, "gpu": torch.cuda.get_device_name(device),
            "compute_capability": f"{major}.{minor}"}


def check_compatible(built: dict, now: dict, engine: str) -> None:
    """An engine runs only on the compute capability and TensorRT version it was built with."""
    if built.get("tensorrt") != now["tensorrt"] or built.get("compute_capability") != now["compute_capability"]:
        raise EngineMismatchError(
            f"engine {engine} was built with TensorRT {built.get('tensorrt')} for {built.get('gpu')} (compute "
            f"capability {built.get('compute_capability')}); this machine has TensorRT {now['tensorrt']} on "
            f"{now['gpu']} ({now['compute_capability']})",
            hint="rebuild it here with `l2v-build-trt DIR`, or run the variant's graph on ONNX Runtime (backend='onnx')")


def check_precision(plan: BuildPlan, now: dict) -> None:
    cc = tuple(int(v) for v in now["compute_capability"].split("."))
    if cc < tuple(plan.min_compute_capability):
        need = ".".join(map(str, plan.min_compute_capability))
        raise EngineBuildError(f"{plan.variant} ({plan.precision}) needs compute capability >= {need}; "
                               f"{now['gpu']} has {now['compute_capability']}",
                               hint="build trt-fp16 (or trt-int8) for this GPU")


def build_engine(plan: BuildPlan, root: Path, out: Path, log_level: str = "WARNING") -> dict:
    """Build `plan` (its graph under `root`) into the file `out`; returns the facts to record: TensorRT
    version, GPU, compute capability, engine bytes, build seconds."""
    trt = tensorrt("building TensorRT engines")
    now = here()
    check_precision(plan, now)
    logger = trt.Logger(getattr(trt.Logger, log_level))
    builder = trt.Builder(logger)
    flags = 0
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly is not None:
        flags |= 1 << int(strongly)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    t0 = time.perf_counter()
    if not parser.parse_from_file(str(Path(root) / plan.onnx)):  # reads external data beside the file
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT could not parse {plan.onnx}: {' | '.join(errors[:3])}")
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(names) != sorted(plan.inputs):
        raise EngineBuildError(f"{plan.onnx} has inputs {names}, the plan names {plan.inputs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.builder_optimization_level
    for p in plan.profiles:
        prof = builder.create_optimization_profile()
        for name in plan.inputs:
            prof.set_shape(name, (p.batch[0], p.sequence[0]), (p.batch[1], p.sequence[1]), (p.batch[2], p.sequence[2]))
        config.add_optimization_profile(prof)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build {plan.variant} (see TensorRT's log above)")
    Path(out).write_bytes(bytes(serialized))
    return {**now, "engine": plan.engine, "engine_bytes": Path(out).stat().st_size,
            "build_seconds": round(time.perf_counter() - t0, 1), "profiles": [p.spec() for p in plan.profiles],
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


class TrtRunner:
    """One engine; dynamic shapes within its profiles; device buffers from torch; thread-safe.

    One execution context per profile (TensorRT forbids two contexts from using one profile at once),
    each with its own CUDA stream and lock; a call takes a free context whose profile contains its
    [batch, sequence], waiting while all of those are busy."""

    def __init__(self, engine_path: Path, plan: BuildPlan, built: dict, device: int = 0):
        import torch

        trt = tensorrt("running TensorRT engines")
        self.torch, self.plan = torch, plan
        torch.cuda.set_device(device)
        check_compatible(built, here(device), plan.engine)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise EngineMismatchError(f"TensorRT {trt.__version__} could not deserialize {plan.engine} "
                                      f"(built with TensorRT {built.get('tensorrt')} on {built.get('gpu')})",
                                      hint="rebuild it with `l2v-build-trt DIR`")
        self.slots = []
        for i, prof in enumerate(plan.profiles):
            ctx = self.engine.create_execution_context()
            stream = torch.cuda.Stream()
            ctx.set_optimization_profile_async(i, stream.cuda_stream)
            stream.synchronize()
            self.slots.append((prof, ctx, stream, threading.Lock()))
        self._free = threading.Condition()

    def _acquire(self, b: int, s: int):
        from l2v.errors import InputError

        fits = [slot for slot in self.slots if slot[0].fits(b, s)]
        if not fits:
            raise InputError(f"a batch of {b} x {s} tokens is outside every profile of {self.plan.engine} "
                             f"({'; '.join(p.spec() for p, *_ in self.slots)})",
                             hint="use a smaller batch_size, or rebuild with wider --trt-shapes")
        with self._free:
            while True:
                for slot in fits:
                    if slot[3].acquire(blocking=False):
                        return slot
                self._free.wait()

    def _release(self, slot) -> None:
        with self._free:
            slot[3].release()
            self._free.notify_all()

    def __call__(self, arrays: dict):
        """{input name: int64 numpy [B, S]} -> numpy float32 [B, D]."""
        torch = self.torch
        b, s = arrays[self.plan.inputs[0]].shape
        slot = self._acquire(int(b), int(s))
        _, ctx, stream, _ = slot
        try:
            with torch.cuda.stream(stream):
                inputs = {n: torch.from_numpy(arrays[n]).to("cuda", non_blocking=False) for n in self.plan.inputs}
                for n, t in inputs.items():
                    ctx.set_input_shape(n, tuple(t.shape))
                    ctx.set_tensor_address(n, t.data_ptr())
                out = torch.empty(tuple(ctx.get_tensor_shape(self.plan.output)), dtype=torch.float32, device="cuda")
                ctx.set_tensor_address(self.plan.output, out.data_ptr())
                if not ctx.execute_async_v3(stream.cuda_stream):
                    raise EngineBuildError(f"TensorRT execute_async_v3 failed on {self.plan.engine}")
                stream.synchronize()
                return out.cpu().numpy()
        finally:
            self._release(slot)

    def close(self) -> None:
        self.slots, self.engine, self.runtime = [], None, None
