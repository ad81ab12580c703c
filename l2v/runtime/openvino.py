"""The `openvino` backend: an OpenVINO IR (`model_<variant>.xml` + `.bin`) compiled for the CPU plugin.

Variants of kind `openvino` are made by the `ov-fp32` / `ov-int8` quantization methods
(l2v/quantize/openvino_methods.py) from the artifact's validated ONNX graph. They keep the graph
contract (inputs `input_ids`, `attention_mask`, `pooling_mask`, output `sentence_embedding`, dynamic batch
and sequence). `openvino` is an optional dependency (`pip install 'l2v-export[openvino]'`).

Compilation pins `INFERENCE_PRECISION_HINT` to the variant's recorded precision, f32 unless the variant was
built for bf16 (`ov-bf16`, `ov-int8:compute=bf16`): the CPU plugin otherwise picks bf16 by itself on CPUs
with AMX, which would silently change an fp32 variant's numbers (an int8 IR's int8 ops are int8 either way).
The variant's `facts.plugin` holds the CPU plugin properties it was gated with (`INFERENCE_PRECISION_HINT`,
`DYNAMIC_QUANTIZATION_GROUP_SIZE`); loading applies them. One compiled model, one infer request per calling
thread (requests are not thread-safe; compiled models are).
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from l2v.errors import ArtifactError, InputError, OptionalDependencyError
from l2v.runtime.backend import Backend, RunOptions
from l2v.text.batch import Batch

HINTS = ("LATENCY", "THROUGHPUT")
PROPERTIES = ("PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS",
              "EXECUTION_DEVICES", "DYNAMIC_QUANTIZATION_GROUP_SIZE")
PRECISIONS = ("f32", "bf16")  # INFERENCE_PRECISION_HINT values a variant may record
VARIANT_PROPERTIES = ("INFERENCE_PRECISION_HINT", "DYNAMIC_QUANTIZATION_GROUP_SIZE")  # what facts.plugin may set


def openvino(purpose: str = "the openvino backend"):
    """The `openvino` module, or `OptionalDependencyError` naming the extra."""
    try:
        import openvino as ov
    except ImportError as e:
        raise OptionalDependencyError("openvino", "openvino", purpose) from e
    return ov


def compile_model(model_or_path, threads: int | None = None, hint: str = "LATENCY", profiling: bool = False,
                  properties: dict | None = None, precision: str = "f32"):
    """Compile an IR path or an `ov.Model` for the CPU with `precision` float ops (see the module docstring).
    LATENCY: one stream, every core on each request (what a caller of `run` wants); THROUGHPUT: several
    streams, which only pay with concurrent requests. `properties`: more CPU plugin properties, by name (e.g.
    {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}, bench/ov_dynamic_group.py)."""
    ov = openvino()
    import openvino.properties as props
    import openvino.properties.hint as h

    if hint not in HINTS:
        raise InputError(f"OpenVINO performance hint {hint!r} is not supported", hint=f"use one of {', '.join(HINTS)}")
    if precision not in PRECISIONS:
        raise InputError(f"OpenVINO inference precision {precision!r} is not supported",
                         hint=f"use one of {', '.join(PRECISIONS)}")
    config = {h.performance_mode: getattr(h.PerformanceMode, hint), h.inference_precision: getattr(ov.Type, precision)}
    if threads:
        config[props.inference_num_threads] = int(threads)
    if profiling:
        config[props.enable_profiling] = True
    config.update(properties or {})
    src = str(model_or_path) if isinstance(model_or_path, (str, Path)) else model_or_path
    try:
        return ov.Core().compile_model(src, "CPU", config)
    except RuntimeError as e:  # OpenVINO raises RuntimeError (its own Exception subclasses) for bad IR files
        what = Path(model_or_path).name if isinstance(model_or_path, (str, Path)) else "an in-memory model"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ArtifactError(f"OpenVINO cannot load {what}: {first}",
                            hint="the IR files are damaged or incomplete; rebuild the variant") from e


def compile_recorded(model_or_path, plugin: dict | None, threads: int | None = None, hint: str = "LATENCY",
                     profiling: bool = False):
    """`compile_model` with a variant's recorded plugin properties (`plugin_of`, or the dict a build records)."""
    rest = dict(plugin or {})
    precision = rest.pop("INFERENCE_PRECISION_HINT", "f32")
    return compile_model(model_or_path, threads, hint, profiling, properties=rest, precision=precision)


def compiled_properties(compiled) -> dict:
    """What the plugin chose (hint, precision, streams, threads), for reports."""
    out = {}
    for key in PROPERTIES:
        try:
            value = compiled.get_property(key)
        except RuntimeError:  # a property this plugin version does not report
            continue
        out[key] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)  # ov.Type -> "f32"
    return out


def runtime_precisions(compiled) -> dict:
    """{"LayerType:precision": count} of the compiled graph's matmul-like layers: what the CPU plugin really
    runs in int8 on this CPU (with int8 weights it quantizes activations at run time only on some CPUs)."""
    from collections import Counter

    c = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        ltype = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if "FullyConnected" in ltype or ltype in ("MatMul", "FakeQuantize"):
            prec = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"
            c[f"{ltype}:{prec}"] += 1
    return dict(sorted(c.items()))


def plugin_of(variant) -> dict:
    """The CPU plugin properties variant was gated with (`facts.plugin`; none in ov-fp32 and older variants:
    f32, the plugin's defaults), checked so a hand-edited manifest cannot pass the plugin anything else."""
    plugin = dict((variant.facts or {}).get("plugin") or {})
    unknown = sorted(set(plugin) - set(VARIANT_PROPERTIES))
    if unknown:
        raise ArtifactError(f"the variant's facts.plugin sets {', '.join(unknown)}, which l2v does not apply",
                            hint=f"only {', '.join(VARIANT_PROPERTIES)} are recorded by l2v; rebuild the variant")
    if plugin.get("INFERENCE_PRECISION_HINT", "f32") not in PRECISIONS:
        raise ArtifactError(f"the variant records inference precision {plugin['INFERENCE_PRECISION_HINT']!r}",
                            hint=f"l2v builds {', '.join(PRECISIONS)}; rebuild the variant")
    return plugin


class OpenVINOBackend(Backend):
    """One compiled model; `run` is safe to call from several threads (one infer request each)."""

    name = "openvino"

    def __init__(self, compiled, output: str, precision: str = "fp32"):
        self.compiled, self.precision = compiled, precision
        self.inputs = [i.get_any_name() for i in compiled.inputs]
        self.output = compiled.output(output)
        self._local = threading.local()

    @classmethod
    def open(cls, artifact, variant, options: RunOptions, root: Path | None = None) -> "OpenVINOBackend":
        from l2v.artifact.files import resolve

        if options.device != "cpu":
            raise InputError(f"the openvino backend runs on the CPU here, not on {options.device!r}",
                             hint="use device='cpu', or an onnx/torch variant on CUDA")
        path = resolve(root or artifact.root, variant.main.path)
        graph = artifact.manifest.graph
        return cls.from_file(path, graph.output, options, graph.dim, variant.dtype, plugin=plugin_of(variant))

    @classmethod
    def from_file(cls, path: Path, output: str, options: RunOptions | None = None, dim: int | None = None,
                  precision: str = "fp32", hint: str = "LATENCY", profiling: bool = False,
                  plugin: dict | None = None) -> "OpenVINOBackend":
        """A compiled IR whose `output` must exist (and be `dim` wide, when given); `plugin`: the variant's
        recorded plugin properties (`plugin_of`)."""
        options = options or RunOptions()
        compiled = compile_recorded(path, plugin, options.threads, hint, profiling)
        names = {n for o in compiled.outputs for n in o.get_names()}
        if output not in names:
            raise ArtifactError(f"{Path(path).name} has no output {output!r} (it has {', '.join(sorted(names))})",
                                hint="the IR does not belong to this manifest; rebuild the variant")
        width = compiled.output(output).get_partial_shape()[-1]
        if dim is not None and width.is_static and width.get_length() != dim:
            raise ArtifactError(f"{Path(path).name} outputs {width.get_length()} dimensions, l2v.json says dim {dim}",
                                hint="the manifest was edited or belongs to another model; rebuild the variant")
        return cls(compiled, output, precision)

    @property
    def properties(self) -> dict:
        return compiled_properties(self.compiled)

    def runtime_precisions(self) -> dict:
        return runtime_precisions(self.compiled)

    def _request(self):
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self.compiled.create_infer_request()
        return req

    def run(self, batch: Batch) -> np.ndarray:
        req = self._request()
        req.infer({k: np.ascontiguousarray(batch[k]) for k in self.inputs}, share_inputs=True)
        return np.array(req.get_tensor(self.output).data, dtype=np.float32, copy=True)

    def profile(self) -> list:
        """Per-node profiling of this thread's last call (compiled with `profiling=True`)."""
        return list(self._request().profiling_info)

    def close(self) -> None:
        self._local = threading.local()
        self.compiled = None
