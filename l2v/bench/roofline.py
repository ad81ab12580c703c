"""% of this machine's peak: achieved FLOP/s over the best matmul probe of the same library and dtype.

The probe runs several times in one benchmark (before and after each group of runners); on a shared
machine single probes under-read, so the best of them is the peak.
"""
from __future__ import annotations


def best_peaks(rows: list[dict]) -> dict[tuple[str, str], float]:
    peaks: dict[tuple[str, str], float] = {}
    for r in rows:
        if r["metric"] == "matmul_peak" and r["value"]:
            key = (r["library"], r["dtype"])
            peaks[key] = max(peaks.get(key, 0.0), r["value"])
    return peaks


def peak_fraction_rows(rows: list[dict]) -> list[dict]:
    """A `peak_fraction` (or `mix_peak_fraction`) row, in %, for every achieved-FLOP/s row whose library
    and dtype were probed."""
    peaks = best_peaks(rows)
    out = []
    for r in rows:
        if r["metric"] not in ("achieved_flops", "mix_achieved_flops") or not r["value"]:
            continue
        peak = peaks.get((r.get("library"), r.get("dtype")))
        if peak:
            name = "peak_fraction" if r["metric"] == "achieved_flops" else "mix_peak_fraction"
            out.append({**r, "metric": name, "unit": "%", "value": 100 * r["value"] / peak, "peak_gflops": peak})
    return out
