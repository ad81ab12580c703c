"""Ratios against the references measured in the same run: the Hugging Face baseline and ORT fp32.

speedup = reference latency / this latency at the same model, batch and seq (> 1: faster), and this
mix throughput / reference mix throughput.
"""
from __future__ import annotations

REFERENCES = {"hf": ("hf", None), "ort_fp32": ("ort", "fp32")}


def _is_ref(row: dict, ref: tuple[str, str | None]) -> bool:
    backend, precision = ref
    return row["backend"] == backend and (precision is None or row["precision"] == precision)


def speedups(rows: list[dict]) -> list[dict]:
    """New rows (`speedup_vs_<ref>`, unit "x") for every latency_p50 and mix_throughput row."""
    out = []
    for ref_name, ref in REFERENCES.items():
        lat = {(r["model"], r["batch"], r["seq"]): r["value"] for r in rows
               if r["metric"] == "latency_p50" and _is_ref(r, ref)}
        mix = {r["model"]: r["value"] for r in rows if r["metric"] == "mix_throughput" and _is_ref(r, ref)}
        for r in rows:
            if r["metric"] == "latency_p50" and r["value"]:
                base = lat.get((r["model"], r["batch"], r["seq"]))
                if base:
                    out.append({**r, "metric": f"speedup_vs_{ref_name}", "unit": "x", "value": base / r["value"],
                                "basis": "latency_p50"})
            elif r["metric"] == "mix_throughput" and r["value"]:
                base = mix.get(r["model"])
                if base:
                    out.append({**r, "metric": f"mix_speedup_vs_{ref_name}", "unit": "x",
                                "value": r["value"] / base, "basis": "mix_throughput"})
    return out
