"""Issue-2 figures for one model: export time, artifact size, validation, and encode throughput of the
artifact's backends (ORT fp32, ORT fp16 if present, PyTorch fp32) at one batch size on real texts.

usage: python bench/foundation.py [MODEL] --out bench/results/foundation [--data-dir DIR] [--batch 32]
       [--n 256] [--max-length 128] [--repeats 3]
MODEL defaults to the embedded SmolLM2. Texts: BBC News documents (the first N, word-truncated) from
--data-dir / L2V_DATA_DIR (fetch with `l2v-fetch-data DIR`, then DIR/data).
All backends are timed in the same run, interleaved, median of --repeats; warm-up excluded.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import l2v
from l2v.eval.corpora import load_bbc


def dir_size(path: Path) -> dict:
    files = {p.relative_to(path).as_posix(): p.stat().st_size for p in path.rglob("*") if p.is_file()}
    return {"total_mb": round(sum(files.values()) / 1e6, 1),
            "onnx_fp32_mb": round(files.get("model.onnx", 0) / 1e6, 1),
            "onnx_fp16_mb": round(files.get("model_fp16.onnx", 0) / 1e6, 1),
            "torch_mb": round(sum(v for k, v in files.items() if k.startswith("torch/")) / 1e6, 1)}


def time_encoders(encoders: dict, texts, batch, repeats) -> dict:
    """Round-robin over the backends (so load changes hit all alike); warm-up excluded; medians."""
    for enc in encoders.values():
        enc.encode(texts[: batch], batch_size=batch)  # warm-up
    runs = {k: [] for k in encoders}
    for _ in range(repeats):
        for k, enc in encoders.items():
            t0 = time.perf_counter()
            enc.encode(texts, batch_size=batch)
            runs[k].append(time.perf_counter() - t0)
    out = {}
    for k, r in runs.items():
        med = statistics.median(r)
        out[k] = {"median_s": round(med, 3), "texts_per_s": round(len(texts) / med, 2), "runs_s": [round(x, 3) for x in r]}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model", nargs="?")
    p.add_argument("--out", default="bench/results/foundation")
    p.add_argument("--data-dir")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--words", type=int, default=120, help="word-truncate documents before tokenising")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--artifact", help="time an existing artifact (exported with --dtype fp32,fp16) instead of exporting")
    args = p.parse_args()
    import onnxruntime
    import torch

    corpus = load_bbc(args.data_dir)
    texts = [" ".join(t.split()[: args.words]) for t in corpus.texts[: args.n]]
    t0 = time.perf_counter()
    if args.artifact:
        art, export_s = Path(args.artifact), None
    else:
        work = Path(tempfile.mkdtemp(prefix="l2v-bench-"))
        art = l2v.export_model(args.model, work / "artifact", demo=args.model is None, dtype="fp32,fp16",
                               max_length=args.max_length)
        export_s = round(time.perf_counter() - t0, 1)
    from l2v.artifact import read_manifest

    manifest = read_manifest(art)
    encoders = {"ort_fp32": l2v.load(art, variant="fp32"), "ort_fp16": l2v.load(art, variant="fp16"),
                "torch_fp32": l2v.load(art, backend="torch")}
    tokens = sum(len(r[0]) for r in encoders["ort_fp32"].preprocessor.rows(texts))
    speed = time_encoders(encoders, texts, args.batch, args.repeats)
    base = speed["torch_fp32"]["texts_per_s"]
    for v in speed.values():
        v["ratio_vs_torch_fp32"] = round(v["texts_per_s"] / base, 2)
        v["tokens_per_s"] = round(tokens / v["median_s"], 1)
    result = {
        "model": manifest.source["name"], "export_wall_s": export_s,
        "export_onnx_s": manifest.variants["fp32"].facts["export_seconds"],
        "size": dir_size(art), "validation": {k: v.validation for k, v in manifest.variants.items() if v.validation},
        "encode": speed, "settings": {"batch": args.batch, "texts": len(texts), "tokens": tokens,
                                      "max_length": args.max_length, "words": args.words, "corpus": "bbc"},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": torch.get_num_threads(),
                    "torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "foundation.json").write_text(json.dumps(result, indent=2))
    lines = ["| backend | texts/s | tokens/s | ratio vs torch fp32 | median s |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['texts_per_s']} | {v['tokens_per_s']} | {v['ratio_vs_torch_fp32']} | {v['median_s']} |"
              for k, v in speed.items()]
    table = "\n".join(lines)
    (out / "foundation.md").write_text(table + "\n")
    print(json.dumps({k: result[k] for k in ("model", "export_wall_s", "export_onnx_s", "size", "validation")}, indent=2))
    print(table)


if __name__ == "__main__":
    main()
