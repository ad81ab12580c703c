"""Turn measurements into rows: the latency grid, the real length mix, memory, CUDA fits."""
from __future__ import annotations

from l2v.bench import memory
from l2v.bench.speed import EncodeResult, Grid, grid_cells
from l2v.bench.stats import summarize


LIBRARIES = {"ort": "onnxruntime", "trt": "onnxruntime", "ov": "openvino"}  # row label -> library (else torch)


def library(backend: str) -> str:
    """The library a row's backend runs on (its matmul probe, when there is one, gives the peak)."""
    return LIBRARIES.get(backend, "torch")


def _where(runner) -> dict:
    lib = library(runner.backend)
    if runner.backend == "trt" and runner.precision.startswith("trt-"):  # a trt-* variant's own engine
        lib = "tensorrt"
    return {"backend": runner.backend, "precision": runner.precision, "library": lib, "dtype": runner.dtype}


def record_grid(rows, runners: list, grid: Grid, config, progress) -> None:
    by_label = {r.label: r for r in runners}
    for batch, seq in grid_cells(config.batch_sizes, config.seq_lens):
        progress.set_description(f"grid b={batch} s={seq}")
        for label, cell in grid.cell(batch, seq).items():
            at = {**_where(by_label[label]), "batch": batch, "seq": seq}
            if cell.skipped:
                rows.skip("latency", cell.skipped, **at)
                continue
            st = summarize(cell.samples)
            for q in ("p50", "p95", "p99"):
                rows.add(f"latency_{q}", st[q] * 1e3, "ms", **at, n=st["n"], interleaved_with=len(runners))
            rows.add("throughput", batch / st["p50"], "seq/s", **at)
            rows.add("throughput_tokens", batch * seq / st["p50"], "tok/s", **at)
            if cell.flops:
                rows.add("achieved_flops", cell.flops / st["p50"] / 1e9, "GFLOP/s", **at, flops_per_call=cell.flops)
        progress.update(len(runners))


def record_mix(rows, runner, res: EncodeResult, corpus, batch_size: int) -> None:
    """The benchmark corpus embedded as the runtime does it: throughput over forwards plus padding."""
    at = {**_where(runner), "batch": batch_size, "corpus": corpus.name, "texts": len(corpus)}
    rows.add("mix_throughput", len(corpus) / res.wall_seconds, "seq/s", **at)
    rows.add("mix_throughput_tokens", res.real_tokens / res.wall_seconds, "tok/s", **at)
    rows.add("mix_padding_efficiency", res.real_tokens / res.padded_tokens, "ratio", **at)
    rows.add("mix_wall", res.wall_seconds, "s", **at)
    st = summarize(res.batch_seconds)
    for q in ("p50", "p95", "p99"):
        rows.add(f"mix_batch_latency_{q}", st[q] * 1e3, "ms", **at, n=st["n"])
    if res.useful_flops:
        rows.add("mix_achieved_flops", res.useful_flops / res.wall_seconds / 1e9, "GFLOP/s", **at,
                 basis="useful (unpadded) FLOPs")


def record_memory(rows, runner, result: dict, batch: int, seq: int) -> None:
    """Rows from `memprobe` (a fresh process per backend)."""
    at = {**_where(runner), "batch": batch, "seq": seq, "scope": f"fresh process: load + one forward, "
          f"peak {result['peak_scope']}"}
    rows.add("peak_rss", result["peak_rss_mb"], "MB", **at)
    rows.add("rss_loaded", result["rss_loaded_mb"] - result["rss_start_mb"], "MB", **at,
             note="RSS after load minus RSS of the bare process")
    if "cuda_peak_mb" in result:
        rows.add("cuda_peak_allocated", result["cuda_peak_mb"], "MB", **at)


def record_fits(rows, runner, config, vocab: int, cap: dict) -> None:
    """Largest batch per sequence length that runs under the CUDA memory cap (torch-based runners)."""
    from l2v.bench.speed import synthetic_arrays

    def run_batch(batch, seq):
        runner.run(synthetic_arrays(batch, seq, vocab))

    for seq in config.seq_lens:
        best = memory.largest_fitting_batch(run_batch, seq, start=max(config.batch_sizes))
        rows.add("max_batch_fits", best, "sequences", **_where(runner), seq=seq, cap_gb=cap["cap_gb"],
                 gpu_total_gb=cap["total_gb"], tried_from=max(config.batch_sizes))
