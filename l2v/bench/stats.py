"""Timing statistics: percentiles and a repeat loop that excludes warm-up and stops on time or count."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from l2v.errors import InputError


def percentile(values, q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default):
    rank = q/100 * (n-1) on the sorted values."""
    xs = sorted(float(v) for v in values)
    if not xs:
        raise InputError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise InputError(f"percentile q={q} is outside 0..100")
    rank = q / 100 * (len(xs) - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def summarize(samples) -> dict:
    """n, mean, min, max, p50, p95, p99 of a list of seconds."""
    xs = [float(s) for s in samples]
    if not xs:
        raise InputError("cannot summarise an empty sample")
    return {"n": len(xs), "mean": sum(xs) / len(xs), "min": min(xs), "max": max(xs),
            "p50": percentile(xs, 50), "p95": percentile(xs, 95), "p99": percentile(xs, 99)}


@dataclass(frozen=True)
class TimingPolicy:
    """Warm-up calls are run and discarded. Then repeat until `max_repeats`, or until both
    `min_repeats` and `min_seconds` are reached, or (never below `floor_repeats`) `max_seconds` is spent."""

    warmup: int = 2
    floor_repeats: int = 3
    min_repeats: int = 10
    max_repeats: int = 200
    min_seconds: float = 1.0
    max_seconds: float = 5.0

    def calls_at_least(self) -> int:
        return self.warmup + self.floor_repeats


DEFAULT = TimingPolicy()
QUICK = TimingPolicy(warmup=1, floor_repeats=3, min_repeats=3, max_repeats=20, min_seconds=0.0, max_seconds=1.0)


def _done(n: int, spent: float, policy: TimingPolicy) -> bool:
    return (n >= policy.max_repeats or (n >= policy.min_repeats and spent >= policy.min_seconds)
            or (n >= policy.floor_repeats and spent >= policy.max_seconds))


def measure_interleaved(fns, policy: TimingPolicy = DEFAULT, clock=time.perf_counter) -> list[list[float]]:
    """Seconds per call for each of `fns`, timed round-robin (the starting function rotates every round)
    so that load from other processes falls on all of them alike; warm-up calls are discarded. Each
    function stops by `policy` on its own count and time."""
    for _ in range(policy.warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    spent = [0.0] * len(fns)
    rnd = 0
    while need := [i for i in range(len(fns)) if not _done(len(samples[i]), spent[i], policy)]:
        k = rnd % len(need)
        for i in need[k:] + need[:k]:
            t0 = clock()
            fns[i]()
            dt = clock() - t0
            samples[i].append(dt)
            spent[i] += dt
        rnd += 1
    return samples


def measure(fn, policy: TimingPolicy = DEFAULT, clock=time.perf_counter) -> list[float]:
    """Seconds per call of `fn()` after `policy.warmup` discarded calls."""
    return measure_interleaved([fn], policy, clock)[0]
