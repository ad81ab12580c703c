"""Speed: the batch x length grid on synthetic full-length batches, and the real length mix of a corpus
run in length-sorted batches exactly as `Encoder.encode` runs them. Several runners are timed
round-robin, call by call, so a busy machine slows them alike and their ratios stay fair."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from l2v.bench.flops import forward_flops
from l2v.bench.stats import TimingPolicy, measure_interleaved


def synthetic_arrays(batch: int, seq: int, vocab_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random token ids (avoiding the first ids, where special tokens live), nothing padded."""
    rng = np.random.default_rng(seed)
    low = min(16, vocab_size - 1)
    ids = rng.integers(low, vocab_size, size=(batch, seq), dtype=np.int64)
    ones = np.ones((batch, seq), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": ones, "pooling_mask": ones.copy()}


def grid_cells(batch_sizes, seq_lens) -> list[tuple[int, int]]:
    """Cheapest first, so the achieved rate of small cells predicts the cost of large ones."""
    return sorted(((b, s) for b in batch_sizes for s in seq_lens), key=lambda c: (c[0] * c[1], c[1]))


@dataclass
class CellResult:
    batch: int
    seq: int
    flops: float | None
    samples: list[float] | None = None
    skipped: str | None = None


class Grid:
    """Times each runner's `run(arrays)` per cell. A runner whose predicted cost for a cell (warm-up +
    minimum repeats at the best rate it has shown so far) exceeds `cell_budget_s` skips it, and says so.
    Without a model config there is no FLOP count: nothing is predicted or skipped."""

    def __init__(self, runs: dict, model_config, vocab_size: int, policy: TimingPolicy, cell_budget_s: float,
                 start_rates: dict):
        self.runs, self.cfg, self.vocab = runs, model_config, vocab_size
        self.policy, self.budget = policy, cell_budget_s
        self.rates = dict(start_rates)

    def cell(self, batch: int, seq: int) -> dict[str, CellResult]:
        flops = forward_flops(self.cfg, [seq] * batch)["executed"] if self.cfg else None
        slow = flops is not None and any(flops / self.rates[k] >= 1.0 for k in self.runs)
        policy = replace(self.policy, warmup=min(1, self.policy.warmup)) if slow else self.policy
        out, active = {}, []
        for key in self.runs:
            per_call = flops / self.rates[key] if flops else 0.0
            predicted = per_call * policy.calls_at_least()
            if predicted > self.budget:
                out[key] = CellResult(batch, seq, flops, skipped=(
                    f"predicted {predicted:.0f} s ({policy.calls_at_least()} calls at {per_call:.1f} s, from "
                    f"{self.rates[key] / 1e9:.0f} GFLOP/s seen) exceeds --cell-budget-s {self.budget:g}"))
            else:
                active.append(key)
        arrays = synthetic_arrays(batch, seq, self.vocab)
        fns = [(lambda k=k: self.runs[k](arrays)) for k in active]
        for key, samples in zip(active, measure_interleaved(fns, policy) if fns else []):
            out[key] = CellResult(batch, seq, flops, samples)
            if flops:
                self.rates[key] = max(self.rates[key], flops / float(np.median(samples)))
        return out


@dataclass
class EncodeResult:
    embeddings: np.ndarray
    batch_seconds: list[float]  # the forward of each batch
    wall_seconds: float  # forwards plus padding (tokenisation excluded)
    real_tokens: int
    padded_tokens: int
    useful_flops: float


def encode_rows(runs: dict, preprocessor, rows, batch_size: int, model_config, dim: int) -> dict[str, EncodeResult]:
    """Embed tokenised `rows` with every runner in `runs`, longest first in batches of `batch_size`
    (the runtime's order), each batch handed to the runners in rotating order. Embeddings come back in
    input order."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    keys = list(runs)
    out = {k: np.empty((len(rows), dim), dtype=np.float32) for k in keys}
    times: dict[str, list[float]] = {k: [] for k in keys}
    pad_seconds, padded, flops = 0.0, 0, 0.0
    for n, s in enumerate(range(0, len(order), batch_size)):
        idx = order[s:s + batch_size]
        t0 = time.perf_counter()
        arrays = preprocessor.pad([rows[i] for i in idx])
        pad_seconds += time.perf_counter() - t0
        k0 = n % len(keys)
        for key in keys[k0:] + keys[:k0]:
            t0 = time.perf_counter()
            out[key][idx] = runs[key](arrays)
            times[key].append(time.perf_counter() - t0)
        padded += arrays["input_ids"].size
        if model_config:
            flops += forward_flops(model_config, [len(rows[i][0]) for i in idx])["useful"]
    real = sum(len(r[0]) for r in rows)
    return {k: EncodeResult(out[k], times[k], sum(times[k]) + pad_seconds, real, padded, flops) for k in keys}
