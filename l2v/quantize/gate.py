"""The recall gate: measure a built variant against the artifact's reference graph on the eval texts."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from l2v.quantize.measure import embed, fidelity, speed, speed_batches
from l2v.runtime.backend import RunOptions, open_backend
from l2v.runtime.onnx import graph_bytes

QUIET = RunOptions(spinning=False)  # idle ORT threads do not spin (the machines this runs on are shared)


class Gate:
    """With `one_at_a_time` (streamed artifacts, whose graphs do not fit in memory together) every ONNX graph
    runs in an ONNX Runtime child process (l2v.runtime.onnx_child), the reference before any candidate, in the
    low-memory session and a chunk of its weights at a time (l2v.runtime.onnx_chunks), so neither this
    process nor the child ever holds a whole 7-8B graph (in-process, the 8B-wide 16-layer int8-smooth gate
    peaked at 10.12 GiB, over the 9.48 GiB bound; the children's figures are recorded as `ort` and
    `reference_ort`). Speed, when asked, is timed in the child on the whole graph (which maps all of it), so
    speeds are not interleaved. A candidate that is not an ONNX graph file (auto's in-memory search, other
    kinds) opens in this process, low-memory."""

    def __init__(self, ctx, eval_texts: list[str], max_length: int, measure_speed: bool, speed_tokens: int,
                 one_at_a_time: bool = False):
        self.ctx, self.texts, self.max_length = ctx, eval_texts, max_length
        self.measure_speed, self.speed_tokens = measure_speed, speed_tokens
        self.output = ctx.output
        self.one_at_a_time = one_at_a_time
        self.options = RunOptions(spinning=False, low_memory=True) if one_at_a_time else QUIET
        self._ref_speed = self._ref_ort = None

    @cached_property
    def batches(self) -> list:
        return self.ctx.batches(self.texts, self.max_length, batch=32)

    @cached_property
    def speed_pair(self) -> tuple:
        """The batch-1 and batch-32 Batches every graph is timed on (tokenized once)."""
        return speed_batches(self.ctx, self.texts, self.speed_tokens)

    @cached_property
    def reference_backend(self):
        return open_backend(self.ctx.artifact, self.ctx.source_name, self.options)

    @cached_property
    def reference(self):
        if self.one_at_a_time:
            out, report = self.in_child(self.ctx.source_path)
            self._ref_speed, self._ref_ort = report.get("speed"), _ort(report)
            return out
        return embed(self.reference_backend, self.batches)

    def in_child(self, path: Path, workdir: Path | None = None) -> tuple:
        """(embeddings, the child's report) of the graph at `path` run in an ONNX Runtime child process."""
        from l2v.errors import ValidationError
        from l2v.runtime.onnx_child import ChildError, as_typed_error, run_in_child

        timing = None
        if self.measure_speed:
            timing = tuple(b.as_dict() for b in self.speed_pair)
        try:
            out, report = run_in_child(path, [b.as_dict() for b in self.batches], self.output, workdir,
                                       timing=timing)
        except ChildError as e:
            raise as_typed_error(e, "the variant could not run: ") from e
        if not np.isfinite(out).all():
            raise ValidationError(f"{Path(path).name} returned non-finite values")
        return out, report

    @staticmethod
    def child_graph(built, tmp: Path) -> Path | None:
        """The candidate's ONNX graph file when the child can run it, else None."""
        main = built.variant.main
        if built.backend is None and built.variant.kind == "onnx" and main is not None:
            return Path(tmp) / main.path
        return None

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
        graph = self.child_graph(built, tmp) if self.one_at_a_time else None
        if graph is not None:
            return self._measure_in_child(built, graph, reference, tmp)
        backend = self.backend(built, tmp)
        try:
            out = {**fidelity(reference, embed(backend, self.batches)), **self._common(built, tmp)}
            if getattr(backend, "low_memory", False):
                out["session"] = "low-memory"
            simulates = getattr(backend, "simulates", None)
            if simulates:  # e.g. a trt variant's graph on ONNX Runtime: its speed says nothing of TensorRT's
                out["measured_on"] = f"ONNX Runtime (CPU), standing in for {simulates}"
            if self.measure_speed and not simulates:
                b1, b32 = self.speed_pair
                if self.one_at_a_time:
                    t = {"ref": self._ref_speed, **speed({"variant": backend}, b1, b32, min_seconds=1.0, max_reps=5)}
                    note = "the reference timed before, alone (graphs too large to hold two)"
                else:
                    t = speed({"ref": self.reference_backend, "variant": backend}, b1, b32, min_seconds=1.0,
                              max_reps=5)
                    note = "interleaved with the reference in one process"
                out["speed"] = self._speed_figures(t["variant"], t["ref"], int(b32.input_ids.shape[1]),
                                                   f"median ms per call, {note}")
            return out
        finally:
            backend.close()

    def _common(self, built, tmp: Path) -> dict:
        files = built.variant.files
        from l2v.runtime.cpu import describe

        return {"size_bytes": sum((Path(tmp) / r.path).stat().st_size for r in files) if files else None,
                "reference": self.ctx.source_name, "reference_size_bytes": graph_bytes(self.ctx.source_path),
                "cpu": describe()}  # where recall was measured: int8 GEMMs differ by CPU (l2v.runtime.cpu)

    def _measure_in_child(self, built, graph: Path, reference, tmp: Path) -> dict:
        got, report = self.in_child(graph, tmp)
        out = {**fidelity(reference, got), **self._common(built, tmp), "session": "low-memory, child process",
               "ort": _ort(report), "reference_ort": self._ref_ort}
        if self.measure_speed and report.get("speed") and self._ref_speed:
            out["speed"] = self._speed_figures(report["speed"], self._ref_speed,
                                               int(self.speed_pair[1].input_ids.shape[1]),
                                               "median ms per call, each graph timed alone in its own ONNX "
                                               "Runtime child process (graphs too large to hold two)")
        return out

    @staticmethod
    def _speed_figures(variant: dict, ref: dict, tokens: int, note: str) -> dict:
        return {"tokens_per_text": tokens, **variant,
                "reference_batch1_ms": ref["batch1_ms"], "reference_batch32_ms": ref["batch32_ms"],
                "speedup_batch1": round(ref["batch1_ms"] / variant["batch1_ms"], 3),
                "speedup_batch32": round(ref["batch32_ms"] / variant["batch32_ms"], 3), "note": note}


def _ort(report: dict) -> dict:
    """The memory and time figures of an ONNX Runtime child's report."""
    return {k: report[k] for k in ("open_s", "run_s", "after_run_gib", "peak_rss_gib") if k in report}
