"""`run_benchmark(config)`: the whole `l2v-bench` run, writing results.jsonl, report.md and three PNGs."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from l2v.bench import env, memory, probe
from l2v.bench.compare import speedups
from l2v.bench.config import BenchConfig
from l2v.bench.plots import write_plots
from l2v.bench.report import write_report
from l2v.bench.roofline import best_peaks, peak_fraction_rows
from l2v.bench.rows import Rows, now_iso, write_jsonl
from l2v.bench.session import bench_artifact, runner_plan
from l2v.bench.speed import grid_cells


@dataclass
class BenchResult:
    out: Path
    jsonl: Path
    report: Path
    plots: dict
    rows: list


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_target(spec: str, out: Path, progress: bool) -> Path:
    """An artifact directory as is; anything else is a MODEL, exported first into OUT/artifacts/."""
    from l2v.artifact import is_artifact

    path = Path(spec).expanduser()
    if path.is_dir() and is_artifact(path):
        return path.resolve()
    from l2v.export.pipeline import export_model  # not l2v.export(): the subpackage shadows that function

    name = path.stem if path.name else "model"
    return Path(export_model(spec, out / "artifacts" / name, progress=progress, overwrite=True))


def run_probes(rows: Rows, device: str, backends, threads, seconds: float) -> dict:
    """{(library, dtype): FLOP/s} measured now, on this machine."""
    peaks = {}
    size = 4096 if device.startswith("cuda") else 1024
    for dtype in probe.TORCH_DTYPES["cuda" if device.startswith("cuda") else "cpu"]:
        peaks[("torch", dtype)] = probe.torch_peak(dtype, device, size, seconds)
    if ("ort" in backends or "trt" in backends) and not device.startswith("cuda"):
        for dtype in probe.ORT_DTYPES:
            peaks[("onnxruntime", dtype)] = probe.ort_peak(dtype, threads, size, seconds)
    for (lib, dtype), res in peaks.items():
        rows.add("matmul_peak", res["flops_per_s"] / 1e9, "GFLOP/s", library=lib, dtype=dtype,
                 size=res["size"], n=res["n"])
    return {k: 1e9 * v for k, v in best_peaks(rows.rows).items()}  # best so far, FLOP/s


def plan_size(root: Path, config: BenchConfig, device: str) -> int:
    from l2v.artifact import open_artifact

    return len(runner_plan(open_artifact(root), config, device))


def run_benchmark(config: BenchConfig) -> BenchResult:
    from l2v.model.load import quiet_loading

    config.check()
    with quiet_loading():  # transformers' per-load bars would break our single progress bar
        return _run(config)


def _run(config: BenchConfig) -> BenchResult:
    from tqdm.auto import tqdm

    from l2v.bench import evalsets as ev

    started, t0 = now_iso(), time.perf_counter()
    out = Path(config.out).expanduser()
    evalsets, notes = ev.prepare(config.corpus, config.data_dir, config.eval_texts, config.seed)
    device = resolve_device(config.device)
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    machine = env.machine_info(device, config.threads or "library default")
    rows = Rows(machine)
    cap = memory.apply_cuda_cap(config.memory_cap_gb, device) if device.startswith("cuda") else None
    if cap is None and config.memory_cap_gb is not None:
        notes.append(f"--memory-cap-gb {config.memory_cap_gb:g} applies to CUDA only; not used on {device}")
    targets = [resolve_target(t, out, config.progress) for t in config.targets]

    def reprobe() -> dict:
        return run_probes(rows, device, config.backends, config.threads, config.probe_seconds)

    per_runner = 2 + len(grid_cells(config.batch_sizes, config.seq_lens)) + len(evalsets)
    steps = sum(plan_size(root, config, device) for root in targets) * per_runner
    models = []
    with tqdm(total=steps, disable=not config.progress, unit="step", dynamic_ncols=True) as progress:
        for root in targets:
            bench_artifact(root, config, device, evalsets, rows, cap, progress, reprobe)
            models.append(rows.model)
        progress.update(progress.total - progress.n)
    all_rows = rows.rows + speedups(rows.rows)
    all_rows += peak_fraction_rows(all_rows)
    notes += [f"eval texts truncated to {config.eval_max_length} tokens; length mix = {evalsets[0].name} "
              f"({len(evalsets[0])} texts) in length-sorted batches of {config.mix_batch}, tokenisation excluded",
              f"timing: {config.timing}; grid cells predicted over {config.cell_budget_s:g} s are skipped",
              "runners are timed " + ("one at a time (--sequential)" if config.sequential else
                                      "together, round-robin call by call, so machine load hits all alike"),
              "peak RSS: each backend alone in a fresh process (load + one forward); % peak: achieved FLOP/s "
              "over the best matmul probe of the same library and dtype in this run"]
    meta = {"command": config.command, "models": models, "machine": machine, "started": started,
            "wall_s": time.perf_counter() - t0, "load_average_end": env.load_average(), "notes": notes}
    jsonl = write_jsonl(all_rows, out / "results.jsonl")
    plots = write_plots(all_rows, out)
    report = write_report(all_rows, meta, plots, out / "report.md")
    return BenchResult(out, jsonl, report, plots, all_rows)
