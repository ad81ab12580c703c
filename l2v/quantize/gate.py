"""The recall gate: measure a built variant against the artifact's reference graph on the eval texts."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from l2v.quantize.measure import embed, fidelity, speed, speed_batches
from l2v.runtime.backend import RunOptions, open_backend
from l2v.runtime.onnx import graph_bytes

QUIET = RunOptions(spinning=False)  # idle ORT threads do not spin (the machines this runs on are shared)


class Gate:
    """With `one_at_a_time` (streamed artifacts, whose graphs do not fit in memory together) the reference
    graph is run, timed and closed before any candidate opens, speeds are not interleaved, and every graph
    opens in ONNX Runtime's low-memory session (an fp16 reference would otherwise be folded into an fp32
    copy of its weights: ~30 GB at 8B)."""

    def __init__(self, ctx, eval_texts: list[str], max_length: int, measure_speed: bool, speed_tokens: int,
                 one_at_a_time: bool = False):
        self.ctx, self.texts, self.max_length = ctx, eval_texts, max_length
        self.measure_speed, self.speed_tokens = measure_speed, speed_tokens
        self.output = ctx.output
        self.one_at_a_time = one_at_a_time
        self.options = RunOptions(spinning=False, low_memory=True) if one_at_a_time else QUIET
        self._ref_speed = None

    @cached_property
    def batches(self) -> list:
        return self.ctx.batches(self.texts, self.max_length, batch=32)

    @cached_property
    def reference_backend(self):
        return open_backend(self.ctx.artifact, self.ctx.source_name, self.options)

    @cached_property
    def reference(self):
        out = embed(self.reference_backend, self.batches)
        if self.one_at_a_time:
            if self.measure_speed:
                b1, b32 = speed_batches(self.ctx, self.texts, self.speed_tokens)
                self._ref_speed = speed({"ref": self.reference_backend}, b1, b32, min_seconds=1.0, max_reps=5)["ref"]
            self.reference_backend.close()
            del self.__dict__["reference_backend"]
        return out

    def graph_backend(self, path: Path):
        """A candidate ONNX graph outside the manifest (auto's search) as a backend."""
        from l2v.runtime.onnx import OnnxBackend

        return OnnxBackend.from_file(path, self.output, self.options)

    def backend(self, built, tmp: Path):
        return built.backend or open_backend(self.ctx.artifact, built.variant, self.options, root=tmp)

    def recall(self, backend) -> dict:
        return fidelity(self.reference, embed(backend, self.batches))

    def measure(self, built, tmp: Path) -> dict:
        reference = self.reference  # before the candidate opens (one graph in memory at a time)
        backend = self.backend(built, tmp)
        try:
            out = fidelity(reference, embed(backend, self.batches))
            files = built.variant.files
            out["size_bytes"] = sum((Path(tmp) / r.path).stat().st_size for r in files) if files else None
            out["reference"] = self.ctx.source_name
            out["reference_size_bytes"] = graph_bytes(self.ctx.source_path)
            if getattr(backend, "low_memory", False):
                out["session"] = "low-memory"
            simulates = getattr(backend, "simulates", None)
            if simulates:  # e.g. a trt variant's graph on ONNX Runtime: its speed says nothing of TensorRT's
                out["measured_on"] = f"ONNX Runtime (CPU), standing in for {simulates}"
            if self.measure_speed and not simulates:
                b1, b32 = speed_batches(self.ctx, self.texts, self.speed_tokens)
                if self.one_at_a_time:
                    t = {"ref": self._ref_speed, **speed({"variant": backend}, b1, b32, min_seconds=1.0, max_reps=5)}
                else:
                    t = speed({"ref": self.reference_backend, "variant": backend}, b1, b32, min_seconds=1.0,
                              max_reps=5)
                out["speed"] = {"tokens_per_text": int(b32.input_ids.shape[1]), **t["variant"],
                                "reference_batch1_ms": t["ref"]["batch1_ms"],
                                "reference_batch32_ms": t["ref"]["batch32_ms"],
                                "speedup_batch1": round(t["ref"]["batch1_ms"] / t["variant"]["batch1_ms"], 3),
                                "speedup_batch32": round(t["ref"]["batch32_ms"] / t["variant"]["batch32_ms"], 3),
                                "note": "median ms per call, " + ("the reference timed before, alone (graphs too "
                                        "large to hold two)" if self.one_at_a_time else
                                        "interleaved with the reference in one process")}
            return out
        finally:
            backend.close()
