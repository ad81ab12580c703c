"""The export's resource plan, made from the model's shapes before anything is loaded or written.

`plan_export(...)` estimates the artifact's size on disk and the peak memory of every stage, picks the
export path (in memory as before for small models; streamed when the fp32 weights pass 2 GiB or the
in-memory path would not fit), and refuses - with `ResourceError`, nothing written - a plan that does
not fit: "needs 17.2 GB in /path, 9.8 GB free", or the stage whose memory passes `--max-memory-gb`.

The memory model (measured, docs/scale.md): a process with torch/transformers/onnx imported holds
~0.33 GiB (BASE_BYTES adds texts, tokenizer, graph); the streamed writer adds one merged projection in
fp32 about three times over (base, LoRA delta, cast); the layer-by-layer reference one decoder layer in
fp32 plus the same merge temporaries; the validation child's low-memory ONNX Runtime session
(l2v.runtime.onnx.low_memory_options) maps one chunk of the weights at a time (CHUNK_BYTES,
l2v.runtime.onnx_chunks; file-backed, counted as RSS) and holds about ORT_TEMP_MATRICES of the largest fp32
weight as temporaries, and so does the quantization gate's child (one graph at a time, l2v.quantize.gate);
the in-memory path
holds ~3.5x the fp32 weights (the issue's 18.4 GB for 1.4 B parameters is 3.3x).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from l2v.errors import ResourceError
from l2v.resources import GiB, available_memory, free_disk, gb, gib, process_memory
from l2v.runtime.onnx_child import CHUNK_BYTES

BASE_BYTES = int(0.5 * GiB)
ORT_BASE_BYTES = int(0.35 * GiB)
ORT_TEMP_MATRICES = 3  # 8B width, 4 layers: peak minus mapped weights ~0.74 GiB
MEMORY_PATH_FACTOR = 3.5
STREAM_FROM_BYTES = 2 * GiB  # fp32 weights from here on are exported streamed (they need external data anyway)
ITEMSIZE = {"fp32": 4, "fp16": 2, "bf16": 2}
DISK_MARGIN = 1.02
DISK_EXTRA = 64 << 20  # tokenizer, manifest, graph protobufs


@dataclass
class Shapes:
    """The backbone's tensors from its config: {name: shape} and derived sizes."""
    tensors: dict
    hidden: int
    layers: int

    @classmethod
    def of(cls, config) -> "Shapes":
        from l2v.model.checkpoint import expected_names

        return cls(expected_names(config), int(config.hidden_size), int(config.num_hidden_layers))

    @staticmethod
    def numel(shape) -> int:
        return math.prod(int(d) for d in shape)

    @property
    def params(self) -> int:
        return sum(self.numel(s) for s in self.tensors.values())

    def bytes(self, dtype: str) -> int:
        return self.params * ITEMSIZE[dtype]

    @property
    def projections(self) -> int:
        """Elements of the 2-D weights inside decoder layers (what the quantizers rewrite)."""
        return sum(self.numel(s) for n, s in self.tensors.items() if n.startswith("layers.") and len(s) == 2)

    @property
    def largest_fp32(self) -> int:
        """Bytes of the largest decoder-layer tensor in fp32 (the one merged at a time)."""
        return 4 * max((self.numel(s) for n, s in self.tensors.items() if n.startswith("layers.")), default=0)

    def layers_bytes(self, dtype: str) -> int:
        """Bytes of every decoder layer's tensors (the embedding is only gathered from, not all read)."""
        return ITEMSIZE[dtype] * sum(self.numel(s) for n, s in self.tensors.items() if n.startswith("layers."))

    @property
    def layer_fp32(self) -> int:
        return 4 * sum(self.numel(s) for n, s in self.tensors.items() if n.startswith("layers.0."))


@dataclass
class Plan:
    path: str  # "memory" | "stream"
    disk_bytes: int
    stages: list = field(default_factory=list)  # [(stage, bytes)]
    budget_bytes: int | None = None
    why: str = ""

    @property
    def peak(self) -> tuple[str, int]:
        return max(self.stages, key=lambda s: s[1]) if self.stages else ("", 0)

    def to_dict(self) -> dict:
        stage, peak = self.peak
        return {"path": self.path, "why": self.why, "disk_gb": round(self.disk_bytes / 1e9, 2),
                "peak_gib": round(peak / GiB, 2), "peak_stage": stage,
                "budget_gib": round(self.budget_bytes / GiB, 2) if self.budget_bytes else None,
                "stages_gib": {s: round(b / GiB, 2) for s, b in self.stages}}


def memory_budget(max_memory_gb: float | None) -> int | None:
    """Bytes the export may use: --max-memory-gb (GiB), else what the machine has available now plus what
    this process already holds."""
    if max_memory_gb is not None:
        return int(max_memory_gb * GiB)
    avail = available_memory()
    return None if avail is None else avail + process_memory().get("rss", 0)


def quant_disk(shapes: Shapes, cfg, src_dtype: str) -> int:
    """A quantized variant's bytes: its projections re-encoded, every other tensor in the source dtype."""
    proj, rest = shapes.projections, shapes.params - shapes.projections
    itemsize = ITEMSIZE[src_dtype]
    method = getattr(cfg, "method", "")
    if method in ("w8", "w4"):
        bits, block = cfg.bits, cfg.block_size
        return int(proj * bits / 8 + proj / block * itemsize) + rest * itemsize
    if method in ("int8-smooth", "auto", "int8-dynamic"):
        kept = getattr(cfg, "keep_sensitive", 0) or 0
        layer = shapes.projections // max(1, shapes.layers)
        return proj + kept * layer * (itemsize - 1) + 32 * shapes.hidden * 4 * 7 * shapes.layers + rest * itemsize
    if method in ("fp16", "bf16"):
        return shapes.params * 2
    return 0  # bnb: no files


def plan_export(config, dtypes: list[str], quant_configs: list, torch_weights: bool | None, stream: str,
                max_memory_gb: float | None, out, n_tokens: int = 4096, adapters: int = 0) -> Plan:
    """Choose the path and check disk and memory; raises `ResourceError` naming what does not fit."""
    shapes = Shapes.of(config)
    budget = memory_budget(max_memory_gb)
    fp32 = shapes.bytes("fp32")
    memory_peak = BASE_BYTES + int(MEMORY_PATH_FACTOR * fp32)
    if stream == "on":
        path, why = "stream", "--stream on"
    elif stream == "off":
        path, why = "memory", "--stream off"
    elif fp32 >= STREAM_FROM_BYTES:
        path, why = "stream", f"the fp32 weights ({gib(fp32)}) pass {gib(STREAM_FROM_BYTES)}"
    elif budget is not None and memory_peak > budget:
        path, why = "stream", f"in memory it would need {gib(memory_peak)}, more than {gib(budget)}"
    else:
        path, why = "memory", f"the fp32 weights ({gib(fp32)}) fit in memory"
    if torch_weights is None:
        torch_weights = path == "memory"
    plan = Plan(path, disk_bytes(shapes, dtypes, quant_configs, torch_weights, path), budget_bytes=budget, why=why)
    plan.stages = (memory_stages(shapes, dtypes, quant_configs, n_tokens) if path == "stream"
                   else [("load, merge and export in memory", memory_peak)])
    check_disk(plan.disk_bytes, out)
    check_memory(plan)
    return plan


def disk_bytes(shapes: Shapes, dtypes: list[str], quant_configs: list, torch_weights: bool, path: str) -> int:
    graphs = sum(shapes.bytes(d) for d in dtypes)
    if path == "memory" and "fp32" not in dtypes:
        graphs += shapes.bytes("fp32")  # the fp32 graph the fp16 converter reads, deleted after
    if "bf16" in dtypes:
        graphs += shapes.bytes("fp32")  # the fp32 copy the bf16 check runs on CPU, deleted after
    src = "fp32" if "fp32" in dtypes else dtypes[0]
    quant = sum(quant_disk(shapes, c, src) for c in quant_configs)
    torch_copy = shapes.bytes("fp32" if path == "memory" else src) if torch_weights else 0
    return int((graphs + quant + torch_copy) * DISK_MARGIN) + DISK_EXTRA


def memory_stages(shapes: Shapes, dtypes: list[str], quant_configs: list, n_tokens: int) -> list:
    """[(stage, peak bytes)] of the streamed export (see the module docstring for the model)."""
    merge = 3 * shapes.largest_fp32
    act = n_tokens * shapes.hidden * 4 * 12
    stages = [("trace the graph (fake weights)", BASE_BYTES + (64 << 20) + shapes.layers * (4 << 20))]
    stages.append(("PyTorch reference, layer by layer", BASE_BYTES + shapes.layer_fp32 + merge + act))
    for d in dtypes:
        stages.append((f"write the {d} graph", BASE_BYTES + merge + (64 << 20)))
        # the child runs the graph a chunk of weights at a time (l2v.runtime.onnx_chunks): one chunk is mapped
        mapped = min(CHUNK_BYTES, shapes.layers_bytes("fp32" if d == "bf16" else d))  # bf16: checked as fp32
        ort = ORT_BASE_BYTES + mapped + ORT_TEMP_MATRICES * shapes.largest_fp32  # activations included
        stages.append((f"validate {d} (ONNX Runtime)", BASE_BYTES + ort))
    src = "fp32" if "fp32" in dtypes else dtypes[0]
    for cfg in quant_configs:
        if getattr(cfg, "method", "") in ("bnb-int8", "bnb-nf4"):
            continue
        if getattr(cfg, "method", "") == "int8-smooth":  # hidden states of every calibration batch, one layer
            # and its fake-quantized copy with the quantizer's temporaries (8B width: 4.27 GiB measured)
            calib = cfg.calib_texts * cfg.calib_max_length * shapes.hidden * 4 * 3
            stages.append((f"quantize {cfg.variant}: calibrate and rank layers, one layer at a time",
                           BASE_BYTES + 4 * shapes.layer_fp32 + merge + calib))
        # the gate runs each graph in an ONNX Runtime child (l2v.quantize.gate), chunk by chunk as validation
        q = quant_disk(shapes, cfg, src) - (shapes.params - shapes.projections) * ITEMSIZE[src]
        child = ORT_BASE_BYTES + min(CHUNK_BYTES, max(q, shapes.layers_bytes(src))) + \
            ORT_TEMP_MATRICES * shapes.largest_fp32
        stages.append((f"quantize {cfg.variant}: gate (ONNX Runtime child, one graph at a time)", BASE_BYTES + child))
    return stages


def check_disk(needed: int, out) -> None:
    from l2v.resources import existing_parent

    free = free_disk(out)
    if needed > free:
        raise ResourceError(f"the artifact needs {gb(needed)} in {existing_parent(out)}, {gb(free)} free",
                            hint="free disk space or choose another --out")


def check_memory(plan: Plan) -> None:
    if plan.budget_bytes is None:
        return
    stage, peak = plan.peak
    if peak > plan.budget_bytes:
        raise ResourceError(f"the export needs about {gib(peak)} of memory at '{stage}', more than the "
                            f"{gib(plan.budget_bytes)} available", hint="free memory, raise --max-memory-gb if the "
                            "machine has more, or drop variants (--dtype, --quant)")
