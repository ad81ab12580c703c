"""ov-int8 option variants side by side on one artifact (issue 17): the recall gate's figures from the
manifest and one throughput figure per variant, against ov-fp32 and the artifact's ORT fp32.

    PYTHONPATH=. /work/venvs/ci/bin/python bench/ov_int8_variants.py ARTIFACT \
        [--variants ov-int8,ov-int8-qk] [--batch 32] [--max-tokens 128] [--seconds 20] [--out bench/results/ov_int8]

Build the variants first, e.g. `l2v-quantize ARTIFACT --quant ov-int8 --quant ov-int8:name=ov-int8-k0,keep_sensitive=0`.
Per variant: recall@10 and mean cosine vs the fp32 graph on the gate's eval texts (load-independent, from
l2v.json), the int8 structure facts (projection MatMuls with int8 activations, attention MatMuls in int8),
and texts/s at `--batch` full-length rows of `--max-tokens` tokens, every engine timed interleaved call by
call (bench/cpu_engines.py's timer), so a loaded machine slows all alike; the load average is recorded.
Output: OUT/ov_int8_variants.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cpu_engines import interleaved, load_average, log, open_engine  # noqa: E402


def speed_batch(art, batch: int, max_tokens: int):
    """`batch` rows of exactly `max_tokens` tokens of real text (l2v's packaged texts, joined)."""
    from l2v.quantize.texts import default_eval_texts

    long = " ".join(default_eval_texts())
    pre = art.preprocessor(max_tokens)
    return pre.pad(pre.rows([long] * batch))


def structure(art_dir: Path, name: str) -> dict:
    """int8_structure of the saved IR, counted now (variants built before a fact existed get it too)."""
    from l2v.quantize.openvino_methods import int8_structure
    from l2v.runtime.openvino import openvino

    return int8_structure(openvino().Core().read_model(str(art_dir / f"model_{name}.xml")))


def variant_row(name: str, entry: dict, s: dict) -> dict:
    gate, facts = entry.get("gate") or {}, entry.get("facts") or {}
    return {"variant": name, "spec": (entry.get("quant") or {}).get("spec"), "recall@10": gate.get("recall@10"),
            "mean_cos": gate.get("mean_cosine"), "mode": facts.get("mode"), "kept_layers": facts.get("kept_layers"),
            "int8_matmuls": s.get("matmul_int8_activations"), "weight_only_int8": s.get("matmul_int8_weights_only"),
            "attention_int8": s.get("attention_matmul_int8")}


def markdown(result: dict) -> str:
    lines = [f"ov-int8 variants on {result['artifact']}, batch {result['batch']} x {result['max_tokens']} tokens, "
             f"{result['threads'] or 'all'} threads, load average {result['load_before']} -> {result['load_after']} "
             "(timings relative: under load)", "",
             "| variant | recall@10 | mean cos | int8 MatMuls (act x w) | int8 weight-only | attention int8 | texts/s | x ov-fp32 | x ORT fp32 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append("| {variant} | {recall@10} | {mean_cos} | {int8_matmuls} | {weight_only_int8} | {attention_int8} | "
                     "{texts_per_s} | {x_ov_fp32} | {x_ort_fp32} |".format(**r))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from l2v.artifact import open_artifact

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact", type=Path)
    p.add_argument("--variants", help="comma-separated openvino variants (default: every one in the artifact)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--seconds", type=float, default=20.0, help="timing budget (at least 3 rounds)")
    p.add_argument("--rounds", type=int, default=200, help="at most this many timed rounds (after one warm-up call each)")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", type=Path, default=HERE / "results" / "ov_int8")
    a = p.parse_args(argv)
    art = open_artifact(a.artifact)
    manifest = json.loads((a.artifact / "l2v.json").read_text())["variants"]
    names = a.variants.split(",") if a.variants else [k for k, v in manifest.items()
                                                       if v.get("kind") == "openvino" and k != "ov-fp32"]
    batch = speed_batch(art, a.batch, a.max_tokens)
    engines = {"ort/fp32": ("ort", "fp32")}
    if "ov-fp32" in manifest:
        engines["ov/ov-fp32"] = ("ov", "ov-fp32")
    engines.update({f"ov/{n}": ("ov", n) for n in names})
    load_before = load_average()
    log(f"timing {len(engines)} engines at batch {a.batch} x {a.max_tokens} tokens")
    runs = {k: open_engine(art, b, v, a.threads) for k, (b, v) in engines.items()}
    times = interleaved(runs, batch, a.seconds, a.rounds)
    tps = {k: a.batch / (t["p50_ms"] / 1e3) for k, t in times.items()}
    rows = []
    for k, (b, v) in engines.items():
        row = variant_row(v, manifest.get(v, {}), structure(a.artifact, v)) if b == "ov" else {"variant": "ORT fp32", "spec": "fp32"}
        row.update(texts_per_s=round(tps[k], 1), p50_ms=times[k]["p50_ms"], x_ort_fp32=round(tps[k] / tps["ort/fp32"], 2),
                   x_ov_fp32=round(tps[k] / tps["ov/ov-fp32"], 2) if "ov/ov-fp32" in tps else None)
        rows.append({key: row.get(key) for key in ("variant", "spec", "recall@10", "mean_cos", "mode", "kept_layers",
                                                   "int8_matmuls", "weight_only_int8", "attention_int8",
                                                   "texts_per_s", "p50_ms", "x_ov_fp32", "x_ort_fp32")})
    result = {"artifact": str(a.artifact), "batch": a.batch, "max_tokens": a.max_tokens, "threads": a.threads,
              "cores": os.cpu_count(), "load_before": load_before, "load_after": load_average(), "rows": rows}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ov_int8_variants.json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    (a.out / "ov_int8_variants.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
