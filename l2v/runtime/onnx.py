"""The `onnx` backend: one ONNX Runtime `InferenceSession` per variant (CPU, or the CUDA EP with
onnxruntime-gpu). `session()` is the one place sessions are made (runtime, validation, gate, bench)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from l2v.errors import ArtifactError, OptionalDependencyError
from l2v.runtime.backend import Backend, RunOptions
from l2v.text.batch import Batch


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def session(model, threads: int | None = None, providers=None, spinning: bool = True, low_memory: bool = False,
            data_dir: Path | None = None, prepack: bool = True, profiling: bool = False):
    """An `InferenceSession` from a path, an in-memory `onnx.ModelProto` or its serialized bytes. `spinning=False`
    stops idle worker threads from spinning (measurements on shared machines). `low_memory=True`: the options of
    `low_memory_options` (the validation child of streamed exports). `data_dir`: where the external data of an
    in-memory model lies. `prepack=False`: kernels do not copy constant weights into their own layouts when the
    session opens (an fp32 or int8 graph opened only to show that it loads: no copy of its weights).
    `profiling=True`: ORT writes a per-node trace (`sess.end_profiling()` returns its path). ORT's own
    load errors (a truncated or edited file) become an `ArtifactError` naming
    the file."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if low_memory:
        low_memory_options(so)
    if not prepack:
        so.add_session_config_entry("session.disable_prepacking", "1")
    if profiling:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tempfile.gettempdir()) / "l2v_ort_profile")
    if data_dir is not None:
        so.add_session_config_entry("session.model_external_initializers_file_folder_path", str(data_dir))
    if isinstance(model, (str, Path)):
        src, what = str(model), Path(model).name
    else:
        src, what = (model if isinstance(model, bytes) else model.SerializeToString()), "an in-memory graph"
    try:
        return ort.InferenceSession(src, so, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:  # ORT raises its own pybind types (InvalidProtobuf, Fail, ...) for bad graphs
        raise ArtifactError(f"ONNX Runtime cannot load {what}: {_first_line(e)}",
                            hint="the file is damaged or incomplete; re-export the artifact") from e


def low_memory_options(so) -> None:
    """Session options that keep a big fp16 graph's weights out of anonymous memory (measured on an
    8B-wide fp16 graph cut to 4 layers, 2.6 GiB of weights, bench/results/ort_memory.md): with the default
    optimizations CPU ORT folds the Cast it inserts before each fp16 MatMul into an fp32 copy of the weight
    (peak 3.56 GiB, all anonymous, growing with depth). Here: no graph optimizations (the weights stay the
    memory-mapped fp16 external data, which our writer page-aligns so ORT can map it), priority-based
    execution order (the default topological order runs every weight's Cast first: 6.98 GiB) and no CPU
    arena (a freed fp32 temporary goes back to the system instead of staying in the arena): peak 2.40 GiB,
    of which 1.66 GiB file-backed (clean, reclaimable mapped weights) and so ~0.74 GiB anonymous (a few
    fp32 weights plus activations, one weight at a time: nearly flat in depth). The price: every run casts the
    weights again (1.9-2.7x the run time, under load)."""
    import onnxruntime as ort

    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    so.enable_cpu_mem_arena = False


def needs_low_memory(path, precision: str, providers, available: int | None = None) -> bool:
    """Automatic `RunOptions.low_memory`: an fp16/bf16 graph on the CPU EP whose fp32 copy (twice the graph's
    bytes, what ORT's optimized session folds the weights into) would take more than half the memory
    available now (an 8B fp16 graph: ~30 GB of fp32 on a 24 GiB machine). Small graphs keep the faster
    default session."""
    if precision not in ("fp16", "bf16") or list(providers)[:1] != ["CPUExecutionProvider"]:
        return False
    if available is None:
        from l2v.resources import available_memory

        available = available_memory()
    if available is None:
        return False
    return 2 * graph_bytes(path) > available // 2


def graph_bytes(path) -> int:
    """A graph file's size plus its external data (`NAME.data` beside it, as our writers put it)."""
    path = Path(path)
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def providers_for(options: RunOptions):
    if options.providers is not None:
        return list(options.providers)
    if options.device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise OptionalDependencyError("onnxruntime-gpu", "gpu", "device='cuda' with the onnx backend")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxBackend(Backend):
    """One session; ORT's `run` is safe to call from several threads."""

    name = "onnx"

    def __init__(self, sess, output: str, precision: str = "fp32", low_memory: bool = False):
        self.session, self.output, self.precision, self.low_memory = sess, output, precision, low_memory
        self.inputs = [i.name for i in sess.get_inputs()]

    @classmethod
    def open(cls, artifact, variant, options: RunOptions, root: Path | None = None) -> "OnnxBackend":
        from l2v.artifact.files import resolve

        path = resolve(root or artifact.root, variant.main.path)
        graph = artifact.manifest.graph
        return cls.from_file(path, graph.output, options, graph.dim, variant.dtype)

    @classmethod
    def from_file(cls, path: Path, output: str, options: RunOptions | None = None, dim: int | None = None,
                  precision: str = "fp32") -> "OnnxBackend":
        """A session on one graph file whose `output` must exist (and be `dim` wide, when given)."""
        options = options or RunOptions()
        providers = providers_for(options)
        low = options.low_memory
        if low is None:
            low = needs_low_memory(path, precision, providers)
        sess = session(path, options.threads, providers, options.spinning, low_memory=low)
        outs = {o.name: o for o in sess.get_outputs()}
        name = Path(path).name
        if output not in outs:
            raise ArtifactError(f"{name} has no output {output!r} (it has {', '.join(outs)})",
                                hint="the graph does not belong to this manifest; re-export the artifact")
        width = outs[output].shape[-1] if outs[output].shape else None
        if dim is not None and isinstance(width, int) and width != dim:
            raise ArtifactError(f"{name} outputs {width} dimensions, l2v.json says dim {dim}",
                                hint="the manifest was edited or belongs to another graph; re-export the artifact")
        return cls(sess, output, precision, low)

    def run(self, batch: Batch) -> np.ndarray:
        feed = {k: batch[k] for k in self.inputs}
        return self.session.run([self.output], feed)[0]

    def close(self) -> None:
        self.session = None

