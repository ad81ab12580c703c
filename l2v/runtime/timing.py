"""Median time per call of runners (anything with `run(batch)`), interleaved so that ratios measured in
one process on a shared machine are fair: the recall gate, `auto`'s search and the ONNX Runtime child."""
from __future__ import annotations

import time

import numpy as np


def speed(runs: dict, batch1, batch32, min_seconds: float = 0.5, max_reps: int = 20) -> dict:
    """Median ms per call for each backend in {label: backend} at batch 1 and batch 32, interleaved."""
    out = {}
    for label, b in (("batch1", batch1), ("batch32", batch32)):
        times = {k: [] for k in runs}
        for r in runs.values():  # warm up
            r.run(b)
        t_start = time.perf_counter()
        while True:
            for k, r in runs.items():
                t = time.perf_counter()
                r.run(b)
                times[k].append(time.perf_counter() - t)
            n = len(next(iter(times.values())))
            if n >= max_reps or (n >= 3 and time.perf_counter() - t_start > min_seconds):
                break
        for k in runs:
            out.setdefault(k, {})[f"{label}_ms"] = round(1000 * float(np.median(times[k])), 3)
    return out
