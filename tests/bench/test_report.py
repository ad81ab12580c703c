"""Report writer: JSONL rows, Markdown and PNG plots from fabricated rows."""
import json

from l2v.bench.compare import speedups
from l2v.bench.plots import write_plots
from l2v.bench.report import write_report
from l2v.bench.rows import Rows, read_jsonl, write_jsonl

MACHINE = {"machine": "box", "platform": "Linux", "python": "3.11", "cpu": "Test CPU", "cpu_count": 2,
           "memory_gb": 24.0, "gpu": None, "device": "cpu", "threads": 1, "versions": {"torch": "x"},
           "git_commit": "abc", "load_average_start": [1.0, 1.0, 1.0]}


def fabricated_rows():
    rows = Rows(MACHINE)
    rows.model = "tiny"
    rows.add("matmul_peak", 100.0, "GFLOP/s", library="torch", dtype="fp32", size=64, n=3)
    for backend, precision, scale, size in (("hf", "fp32", 1.0, 10.0), ("ort", "fp32", 0.5, 10.5),
                                            ("ort", "int8", 0.3, 3.0)):
        w = {"backend": backend, "precision": precision}
        rows.add("model_size", size, "MB", **w)
        rows.add("peak_rss", 500.0, "MB", **w)
        for b in (1, 8):
            for s in (32, 128):
                at = {**w, "batch": b, "seq": s}
                rows.add("latency_p50", scale * b * s / 10, "ms", n=10, **at)
                rows.add("latency_p95", scale * b * s / 9, "ms", **at)
                rows.add("latency_p99", scale * b * s / 8, "ms", **at)
                rows.add("throughput", 1e4 / (scale * s), "seq/s", **at)
        rows.add("mix_throughput", 10 / scale, "seq/s", **w, batch=32)
        rows.add("fidelity_recall_at_10", 1.0 if precision == "fp32" else 0.9, "recall", **w)
        rows.add("fidelity_cosine_mean", 0.999, "cosine", **w)
        rows.add("bbc_knn_acc", 0.8, "accuracy", kind="quality", **w)
        rows.add("lee_spearman", 0.5, "rho", kind="quality", **w)
    rows.skip("latency", "predicted 99 s exceeds budget", backend="ort", precision="int8", batch=32, seq=512)
    rows.add("ratio", float("nan"), "x")  # non-finite values become null, not invalid JSON
    return rows.rows


def test_jsonl_rows_carry_context(tmp_path):
    rows = fabricated_rows()
    path = write_jsonl(rows + speedups(rows), tmp_path / "r.jsonl")
    back = read_jsonl(path)
    assert len(back) > len(rows)
    for r in back:
        for key in ("metric", "unit", "value", "backend", "precision", "batch", "seq", "model", "machine",
                    "cpu", "gpu", "versions", "timestamp", "git_commit"):
            assert key in r
    sp = [r for r in back if r["metric"] == "speedup_vs_hf" and r["precision"] == "int8" and r["batch"] == 8]
    assert sp and abs(sp[0]["value"] - 1 / 0.3) < 1e-9
    assert [r for r in back if r["metric"] == "ratio"][0]["value"] is None
    json.loads(path.read_text().splitlines()[0])


def test_markdown_and_plots_exist_and_are_not_empty(tmp_path):
    rows = fabricated_rows()
    rows = rows + speedups(rows)
    plots = write_plots(rows, tmp_path)
    assert set(plots) == {"latency", "throughput", "pareto"}
    for p in plots.values():
        assert p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"
    meta = {"command": "l2v-bench tiny", "models": ["tiny"], "machine": MACHINE, "started": "now",
            "wall_s": 1.0, "load_average_end": [1, 1, 1], "notes": ["a note"]}
    md = write_report(rows, meta, plots, tmp_path / "report.md").read_text()
    assert "| ort/int8 |" in md and "Test CPU" in md and "a note" in md
    assert "predicted 99 s exceeds budget" in md
    assert "](latency_vs_batch.png)" in md and "BBC kNN" in md


def test_plots_without_data_still_write_files(tmp_path):
    plots = write_plots([], tmp_path)
    assert all(p.stat().st_size > 0 for p in plots.values())
