"""Declarative ONNX export spec (optimum-style): inputs, outputs, dynamic axes, opset."""
from __future__ import annotations

from dataclasses import dataclass

from l2v.errors import InputError

MIN_OPSET = 18
RESERVED_OUTPUT_NAMES = ("embedding",)  # the dynamo exporter names a node this; ORT then rejects the file


@dataclass(frozen=True)
class OnnxExportSpec:
    inputs: tuple[str, ...] = ("input_ids", "attention_mask", "pooling_mask")
    output: str = "sentence_embedding"
    batch_axis: str = "batch"
    sequence_axis: str = "sequence"
    opset: int = MIN_OPSET

    def __post_init__(self):
        if self.opset < MIN_OPSET:
            raise InputError(f"opset {self.opset} is too old", hint=f"use --opset {MIN_OPSET} or newer")
        if self.output in RESERVED_OUTPUT_NAMES:
            raise InputError(f"output name {self.output!r} is reserved by the dynamo exporter",
                             hint="keep the default 'sentence_embedding'")

    def dynamic_shapes(self) -> dict:
        import torch

        batch = torch.export.Dim(self.batch_axis, min=1, max=4096)
        seq = torch.export.Dim(self.sequence_axis, min=1, max=131072)
        return {name: {0: batch, 1: seq} for name in self.inputs}

    def to_dict(self) -> dict:
        return {"inputs": list(self.inputs), "output": self.output, "opset": self.opset,
                "dynamic_axes": {"0": self.batch_axis, "1": self.sequence_axis}}
