"""The recall gate: measure a built variant against the artifact's fp32 graph on the eval texts."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from l2v.quantize import graph
from l2v.quantize.measure import OnnxRunner, embed, fidelity, speed, speed_batches


class Gate:
    def __init__(self, ctx, eval_texts: list[str], max_length: int, measure_speed: bool, speed_tokens: int):
        self.ctx, self.texts, self.max_length = ctx, eval_texts, max_length
        self.measure_speed, self.speed_tokens = measure_speed, speed_tokens
        self.output = ctx.manifest["export"]["output"]

    @cached_property
    def batches(self) -> list[dict]:
        return self.ctx.batches(self.texts, self.max_length, batch=32)

    @cached_property
    def fp32_runner(self):
        return OnnxRunner(self.ctx.fp32_path, self.output)

    @cached_property
    def reference(self):
        return embed(self.fp32_runner, self.batches)

    def runner(self, entry: dict, tmp: Path):
        if "_runner" in entry:
            return entry.pop("_runner")
        return OnnxRunner(Path(tmp) / entry["file"], self.output)

    def recall(self, run) -> dict:
        return fidelity(self.reference, embed(run, self.batches))

    def measure(self, entry: dict, tmp: Path) -> dict:
        run = self.runner(entry, tmp)
        out = self.recall(run)
        out["size_bytes"] = graph.file_bytes(Path(tmp) / entry["file"]) if entry.get("file") else None
        out["fp32_size_bytes"] = graph.file_bytes(self.ctx.fp32_path)
        if self.measure_speed:
            b1, b32 = speed_batches(self.ctx, self.texts, self.speed_tokens)
            t = speed({"fp32": self.fp32_runner, "variant": run}, b1, b32, min_seconds=1.0, max_reps=5)
            out["speed"] = {"tokens_per_text": int(b32["input_ids"].shape[1]), **t["variant"],
                            "fp32_batch1_ms": t["fp32"]["batch1_ms"], "fp32_batch32_ms": t["fp32"]["batch32_ms"],
                            "speedup_batch1": round(t["fp32"]["batch1_ms"] / t["variant"]["batch1_ms"], 3),
                            "speedup_batch32": round(t["fp32"]["batch32_ms"] / t["variant"]["batch32_ms"], 3),
                            "note": "median ms per call, interleaved with fp32 in one process"}
        return out
