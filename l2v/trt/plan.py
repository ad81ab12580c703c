"""The build plan of a `trt-<precision>` variant: a JSON file in the artifact (format `l2v-trt-plan`,
version 1) saying how to turn its ONNX graph into a TensorRT engine, so a user on a GPU box can build
it with `l2v-build-trt DIR` or without l2v (the `trtexec` line).

Everything about precision is in the graph (strongly typed fp16/bf16 with fp32 islands, Q/DQ for
int8/fp8), so the plan carries no precision flags; that makes one plan valid for both TensorRT lines:
* TensorRT 10.x: NetworkDefinitionCreationFlag.STRONGLY_TYPED, `trtexec --stronglyTyped`; never
  --fp16/--bf16/--int8/--fp8 or per-layer precisions (TensorRT rejects those on a strongly typed network);
* TensorRT 11.x: weak typing is removed; every network is strongly typed (the flag is accepted).

Profiles: `batch=MIN:OPT:MAX,seq=MIN:OPT:MAX[;...]` (`;` separates profiles). TensorRT lets one execution
context use one profile at a time, so the runner keeps one context per profile: repeating a profile is
how a plan serves several threads in parallel.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from l2v.errors import ArtifactError, InputError

PLAN_FORMAT = "l2v-trt-plan"
PLAN_VERSION = 1
PRECISIONS = ("fp16", "bf16", "int8", "fp8")
MIN_TENSORRT = "10.0"  # strongly typed networks, INT64 inputs, FP8/INT8 Q/DQ from ONNX
# lowest compute capability with kernels for the precision (TensorRT support matrix): bf16 from Ampere,
# fp8 from Ada (8.9: L4, L40S, RTX 4090) and Hopper
MIN_COMPUTE_CAPABILITY = {"fp16": (7, 5), "int8": (7, 5), "bf16": (8, 0), "fp8": (8, 9)}
WORKSPACE_BYTES = 4 << 30
DEFAULT_BATCH = (1, 16, 64)


@dataclass
class Profile:
    """min/opt/max of the two dynamic axes; every graph input is int64 [batch, sequence]."""
    batch: tuple = DEFAULT_BATCH
    sequence: tuple = (1, 128, 512)

    def check(self, max_length: int | None = None) -> "Profile":
        for what, triple in (("batch", self.batch), ("seq", self.sequence)):
            if len(triple) != 3 or not all(isinstance(v, int) for v in triple) or not 1 <= triple[0] <= triple[1] <= triple[2]:
                raise InputError(f"--trt-shapes {what}={':'.join(map(str, triple))} must be MIN:OPT:MAX with "
                                 "1 <= MIN <= OPT <= MAX", hint="e.g. batch=1:16:64,seq=1:128:512")
        if max_length is not None and self.sequence[2] > max_length:
            raise InputError(f"--trt-shapes seq max {self.sequence[2]} exceeds the artifact's max length {max_length}",
                             hint=f"use seq=...:{max_length} or export with a larger --max-length")
        return self

    def fits(self, batch: int, seq: int) -> bool:
        return self.batch[0] <= batch <= self.batch[2] and self.sequence[0] <= seq <= self.sequence[2]

    def spec(self) -> str:
        return f"batch={':'.join(map(str, self.batch))},seq={':'.join(map(str, self.sequence))}"


def default_profiles(max_length: int) -> list[Profile]:
    """One profile for what `encode()` sends: length-sorted batches of up to 64 texts of up to max_length."""
    return [Profile(DEFAULT_BATCH, (1, min(128, max_length), max_length))]


def parse_shapes(spec: str | None, max_length: int | None = None) -> list[Profile]:
    """`batch=1:16:64,seq=1:128:512[;batch=...]` -> profiles; a missing key takes the default (seq from
    max_length). None/empty -> the default profile (needs max_length)."""
    if not spec or not str(spec).strip():
        if max_length is None:
            return []
        return default_profiles(max_length)
    profiles = []
    for part in filter(None, (p.strip() for p in str(spec).split(";"))):
        seq_max = max_length or 512
        kw = {"batch": DEFAULT_BATCH, "sequence": (1, min(128, seq_max), seq_max)}
        for item in part.split(","):
            key, _, val = item.partition("=")
            key = {"batch": "batch", "seq": "sequence", "sequence": "sequence"}.get(key.strip())
            try:
                nums = tuple(int(v) for v in val.split(":"))
            except ValueError:
                nums = ()
            if key is None or len(nums) != 3:
                raise InputError(f"--trt-shapes entry {item.strip()!r} is not KEY=MIN:OPT:MAX",
                                 hint="use batch=MIN:OPT:MAX,seq=MIN:OPT:MAX (profiles separated by ';')")
            kw[key] = nums
        profiles.append(Profile(**kw).check(max_length))
    if not profiles:
        raise InputError(f"--trt-shapes {spec!r} names no profile", hint="e.g. batch=1:16:64,seq=1:128:512")
    return profiles


@dataclass
class BuildPlan:
    """How to build the engine of one variant. `onnx`/`engine` are relative to the artifact."""
    variant: str
    precision: str  # fp16 | bf16 | int8 | fp8 (int8/fp8 graphs compute the rest in fp16)
    onnx: str
    external_data: bool
    engine: str
    profiles: list = field(default_factory=list)
    inputs: list = field(default_factory=lambda: ["input_ids", "attention_mask", "pooling_mask"])
    input_dtype: str = "int64"
    output: str = "sentence_embedding"
    network_flags: list = field(default_factory=lambda: ["STRONGLY_TYPED"])
    builder_flags: list = field(default_factory=list)  # none: precision is in the graph
    workspace_bytes: int = WORKSPACE_BYTES
    builder_optimization_level: int = 3
    precision_policy: dict = field(default_factory=dict)
    min_tensorrt: str = MIN_TENSORRT
    min_compute_capability: tuple = (7, 5)
    format: str = PLAN_FORMAT
    version: int = PLAN_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        d["profiles"] = [{"batch": list(p.batch), "sequence": list(p.sequence)} for p in self.profiles]
        d["min_compute_capability"] = list(self.min_compute_capability)
        d["trtexec"] = trtexec_command(self)
        if len(self.profiles) > 1:
            d["trtexec_note"] = ("trtexec builds the first profile; the engine with every profile (one execution "
                                 "context each) is built by `l2v-build-trt DIR`")
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "plan") -> "BuildPlan":
        if not isinstance(d, dict) or d.get("format") != PLAN_FORMAT or d.get("version") != PLAN_VERSION:
            got = f"{d.get('format')} v{d.get('version')}" if isinstance(d, dict) else type(d).__name__
            raise ArtifactError(f"{source} is not an {PLAN_FORMAT} version {PLAN_VERSION} ({got})",
                                hint="re-export the variant with this l2v (l2v-export --trt)")
        body = {k: v for k, v in d.items() if k not in ("trtexec", "trtexec_note")}
        try:
            body["profiles"] = [Profile(tuple(p["batch"]), tuple(p["sequence"])).check() for p in body["profiles"]]
            body["min_compute_capability"] = tuple(body["min_compute_capability"])
            return cls(**body)
        except (KeyError, TypeError) as e:
            raise ArtifactError(f"{source} lacks or mistypes {e}", hint="re-export the variant (l2v-export --trt)") from e


def make_plan(variant: str, precision: str, onnx_file: str, external_data: bool, profiles: list[Profile],
              policy: dict | None = None, workspace_bytes: int = WORKSPACE_BYTES, opt_level: int = 3,
              inputs: list | None = None, output: str = "sentence_embedding") -> BuildPlan:
    if precision not in PRECISIONS:
        raise InputError(f"TensorRT precision {precision!r} is not supported", hint=f"use one of {', '.join(PRECISIONS)}")
    if not profiles:
        raise InputError("a TensorRT build plan needs at least one profile")
    stem = onnx_file[:-5] if onnx_file.endswith(".onnx") else onnx_file
    return BuildPlan(variant=variant, precision=precision, onnx=onnx_file, external_data=external_data,
                     engine=f"{stem}.engine", profiles=list(profiles), workspace_bytes=int(workspace_bytes),
                     builder_optimization_level=int(opt_level), precision_policy=policy or {},
                     min_compute_capability=MIN_COMPUTE_CAPABILITY[precision],
                     inputs=list(inputs or ["input_ids", "attention_mask", "pooling_mask"]), output=output)


def _shapes(plan: BuildPlan, which: int, profile: Profile) -> str:
    return ",".join(f"{name}:{profile.batch[which]}x{profile.sequence[which]}" for name in plan.inputs)


def trtexec_command(plan: BuildPlan, artifact_dir: str | Path = ".") -> str:
    """The equivalent trtexec line (TensorRT 10.x and 11.x) for the plan's first profile; run it in the
    artifact directory (or pass `artifact_dir`)."""
    root = Path(artifact_dir)
    args = ["trtexec", f"--onnx={root / plan.onnx}", f"--saveEngine={root / plan.engine}", "--stronglyTyped"]
    for p in plan.profiles[:1]:
        args += [f"--minShapes={_shapes(plan, 0, p)}", f"--optShapes={_shapes(plan, 1, p)}",
                 f"--maxShapes={_shapes(plan, 2, p)}"]
    args += [f"--memPoolSize=workspace:{plan.workspace_bytes >> 20}M",
             f"--builderOptimizationLevel={plan.builder_optimization_level}", "--skipInference"]
    return " ".join(shlex.quote(a) for a in args)


def plan_json(plan: BuildPlan) -> str:
    return json.dumps(plan.to_dict(), indent=2) + "\n"


def read_plan(path: Path) -> BuildPlan:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"cannot read the TensorRT build plan {path.name}: {e}",
                            hint="re-export the variant (l2v-export --trt)") from e
    return BuildPlan.from_dict(data, path.name)


# ------------------------------------------------------------------------ a plan for any ONNX file
DTYPE_BYTES = {1: 4, 10: 2, 16: 2, 3: 1, 2: 1, 17: 1, 18: 1, 19: 1, 20: 1, 6: 4, 7: 8, 11: 8, 21: 1, 22: 1}


def graph_summary(onnx_path: Path) -> dict:
    """Inputs, output, opset, initializer bytes by type and whether the weights are external, read from
    any ONNX file without loading its weights (a > 2 GiB graph with external data is fine)."""
    import onnx

    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path), load_external_data=False)
    by_type: dict[str, int] = {}
    external = False
    for init in model.graph.initializer:
        n = 1
        for d in init.dims:
            n *= int(d)
        name = onnx.TensorProto.DataType.Name(init.data_type).lower()
        by_type[name] = by_type.get(name, 0) + n * DTYPE_BYTES.get(init.data_type, 4)
        external = external or init.data_location == onnx.TensorProto.EXTERNAL
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    return {"inputs": [i.name for i in model.graph.input], "outputs": [o.name for o in model.graph.output],
            "opset": opset, "nodes": len(model.graph.node), "external_data": external,
            "weight_bytes": sum(by_type.values()), "weight_bytes_by_type": by_type,
            "file_bytes": onnx_path.stat().st_size}


def plan_for_graph(onnx_path: Path, precision: str, max_length: int, shapes: str | None = None,
                   variant: str | None = None, workspace_bytes: int = WORKSPACE_BYTES) -> dict:
    """The build plan for any ONNX graph file (relative paths: the file's directory), with the graph's
    summary: what `l2v-export --trt` writes, for a graph made elsewhere (e.g. a streamed 8B export)."""
    onnx_path = Path(onnx_path)
    info = graph_summary(onnx_path)
    output = info["outputs"][0] if info["outputs"] else "sentence_embedding"
    plan = make_plan(variant or f"trt-{precision}", precision, onnx_path.name, info["external_data"],
                     parse_shapes(shapes, max_length), workspace_bytes=workspace_bytes,
                     inputs=info["inputs"], output=output)
    return {**plan.to_dict(), "graph": info}
