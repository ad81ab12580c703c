"""Output dtypes of `l2v-embed`: float32, float16, and int8 / binary as sentence-transformers'
`quantize_embeddings` makes them (sentence_transformers/util/quantization.py, 6.x), so an index built for
those works on our files unchanged.

- int8: per dimension, `clip(floor((x - min) / ((max - min) / 255)), 0, 255) - 128` (a zero range counts
  as a step of 1). The ranges (`min`, `max` per dimension, float32 `[2, dim]`) are calibrated on the
  float32 vectors of the job's first window (the first `--window` rows of the input), fixed before any
  part is written, stored in part 0 and in the manifest (`int8_ranges`) so that queries are quantized
  with the same ranges: `quantize_embeddings(q, "int8", ranges=np.array(manifest["int8_ranges"]))`.
  Values outside the calibrated range clip to -128 / 127, as in sentence-transformers.
- binary: one bit per dimension (`x > 0`), packed big-endian 8 per byte along each row, stored as
  `packed - 128` in int8 (sentence-transformers' "binary"; `+ 128` gives its "ubinary" bytes). Width:
  `ceil(dim / 8)`.
"""
from __future__ import annotations

import numpy as np

from l2v.errors import InputError

DTYPES = ("float32", "float16", "int8", "binary")


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise InputError(f"--output-dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return dtype


def width(dtype: str, dim: int) -> int:
    """Values per stored vector."""
    return (dim + 7) // 8 if dtype == "binary" else dim


def numpy_dtype(dtype: str):
    return {"float32": np.float32, "float16": np.float16, "int8": np.int8, "binary": np.int8}[dtype]


def int8_ranges(calibration: np.ndarray) -> np.ndarray:
    """Per-dimension min and max of float32 vectors `[N, dim]` -> float32 `[2, dim]`."""
    calibration = np.asarray(calibration, dtype=np.float32)
    return np.vstack((calibration.min(axis=0), calibration.max(axis=0))).astype(np.float32)


def quantize(emb: np.ndarray, dtype: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """float32 `[N, dim]` -> the stored array `[N, width(dtype, dim)]`."""
    emb = np.asarray(emb, dtype=np.float32)
    if dtype == "float32":
        return emb
    if dtype == "float16":
        return emb.astype(np.float16)
    if dtype == "int8":
        if ranges is None:
            raise InputError("int8 output needs calibrated ranges")
        ranges = np.asarray(ranges, dtype=np.float32)
        starts = ranges[0, :]
        steps = (ranges[1, :] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        return (np.clip(np.floor((emb - starts) / steps), 0, 255) - 128).astype(np.int8)
    if dtype == "binary":
        return (np.packbits(emb > 0, axis=-1) - 128).astype(np.int8)
    raise InputError(f"output dtype {dtype!r} is not one of {', '.join(DTYPES)}")


def arrow_type(dtype: str, dim: int):
    """The `embedding` column: a fixed-size list of the dtype."""
    import pyarrow as pa

    value = {"float32": pa.float32(), "float16": pa.float16(), "int8": pa.int8(), "binary": pa.int8()}[dtype]
    return pa.list_(value, width(dtype, dim))
