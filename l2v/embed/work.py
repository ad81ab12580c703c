"""What every executor does to one window: embed it, quantize it, write its part.

`Work` holds everything a worker needs (it is pickled into Ray actors and write tasks); `embed_window`
and `write_window` are the same code for the local loop and for Ray, which is why both give the same
files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from l2v.embed.batcher import encode_window
from l2v.embed.parts import write_part
from l2v.embed.plan import Plan
from l2v.embed.quantize import int8_ranges, numpy_dtype, quantize, width
from l2v.embed.reader import where
from l2v.errors import InputError


@dataclass(frozen=True)
class Work:
    artifact: str  # the artifact directory
    variant: str
    plan: Plan
    out: str
    job: str
    dtype: str
    dim: int
    max_batch_tokens: int
    prompt: str | None = None
    normalize: bool | None = None
    skip: bool = False
    device: str = "cpu"
    threads: int | None = None
    ranges: tuple | None = None  # int8: the calibrated [min, max] per dimension (from window 0)
    max_length: int | None = None  # truncate to fewer tokens than the artifact's max_length

    def open_encoder(self):
        from l2v.runtime.encoder import load

        return load(self.artifact, variant=self.variant, device=self.device, threads=self.threads,
                    max_length=self.max_length)

    def locate(self, record) -> str:
        return where(self.plan.sources[record.file].file, record.pos)


def embed_window(work: Work, encoder, k: int, rows, on_batch=None) -> tuple[list, np.ndarray, dict]:
    """Window k's rows -> (ids, stored vectors in the output dtype, the part's metadata)."""
    t0 = time.perf_counter()
    res = encode_window(encoder, rows, work.max_batch_tokens, work.prompt, work.normalize, work.skip,
                        work.locate, on_batch)
    ranges = np.asarray(work.ranges, dtype=np.float32) if work.ranges is not None else None
    meta = {"job": work.job, "window": k, "rows": len(res.kept), "tokens": res.tokens, "skipped": res.skipped}
    if work.dtype == "int8" and ranges is None:
        if k != 0 or not len(res.kept):
            raise InputError("int8 output needs its ranges calibrated on window 0, which holds no row",
                             hint="use another --output-dtype, or put good rows first")
        ranges = int8_ranges(res.vectors)
        meta["int8_ranges"] = ranges.tolist()
    stored = quantize(res.vectors, work.dtype, ranges)
    meta["seconds"] = round(time.perf_counter() - t0, 3)
    return [r.id for r in res.kept], stored, meta


def write_window(work: Work, k: int, ids: list, stored: np.ndarray, meta: dict) -> dict:
    meta = dict(meta)
    meta["bytes"] = write_part(Path(work.out), k, ids, work.plan.id_kind, stored, work.dtype, work.dim, meta)
    return meta


def decode_stored(work: Work, data: bytes, n: int) -> np.ndarray:
    """A window's vectors shipped as bytes (Ray) -> the array `write_part` takes."""
    return np.frombuffer(data, dtype=numpy_dtype(work.dtype)).reshape(n, width(work.dtype, work.dim))
