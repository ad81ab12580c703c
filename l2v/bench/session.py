"""Benchmark one artifact: open its runners (the HF baseline first), measure memory alone in a fresh
process each, time the grid and the length mix round-robin across runners, embed the quality corpora,
and score fidelity and task quality."""
from __future__ import annotations

import time
from pathlib import Path

from l2v.bench.measure import library, record_fits, record_grid, record_memory, record_mix
from l2v.bench.quality import fidelity_metrics, task_metrics
from l2v.bench.rows import Rows
from l2v.bench.speed import Grid, encode_rows


def runner_plan(artifact, config, device: str) -> list[tuple[str, str, object]]:
    """[(label, precision-or-variant, opener)]: the baseline first, then the requested backends."""
    from l2v.bench import runners

    plan = [("hf", "bf16" if device.startswith("cuda") else "fp32", lambda: runners.open_hf(artifact, device))]
    if "torch" in config.backends:
        plan.append(("torch", "fp32", lambda: runners.open_l2v_torch(artifact, device, "padded")))
        if device.startswith("cuda"):  # on CPU the packed engine is a reference path, not a fast one
            plan.append(("packed", "bf16", lambda: runners.open_l2v_torch(artifact, device, "packed")))
    if "ort" in config.backends:
        for name in artifact.manifest.variants_of("onnx"):
            plan.append(("ort", name, lambda n=name: runners.open_ort(artifact, n, device, config.threads)))
    if "ov" in config.backends:
        for name in artifact.manifest.variants_of("openvino"):
            plan.append(("ov", name, lambda n=name: runners.open_ort(artifact, n, device, config.threads, label="ov")))
    if "trt" in config.backends:
        for name in runners.trt_engine_variants(artifact):
            plan.append(("trt", name, lambda n=name: runners.open_trt_engine(artifact, n)))
        plan.append(("trt", "fp32", lambda: runners.open_trt(artifact, config.threads)))
    return plan


def trt_engine_unavailable() -> str | None:
    from l2v.trt.engine import unavailable_reason

    return unavailable_reason()


class ArtifactBench:
    def __init__(self, root: Path, config, device: str, evalsets, rows: Rows, cap: dict | None, progress):
        from l2v.artifact import open_artifact
        from l2v.bench import runners

        self.root, self.config, self.device, self.evalsets = root, config, device, evalsets
        self.rows, self.cap, self.progress = rows, cap, progress
        self.artifact = open_artifact(root)
        self.cfg = runners.model_config(self.artifact)
        self.pre = self.artifact.preprocessor(config.eval_max_length)
        self.tokenized = {c.name: self.pre.rows(c.texts, prompt_name=config.prompt_name) for c in evalsets}
        self.vocab = len(self.pre.tokenizer)
        self.dim = int(self.artifact.manifest.graph.dim)
        self.embeddings: dict[str, dict] = {}
        self.ref_label: str | None = None
        rows.model = self.artifact.manifest.source.get("name") or root.name
        rows.artifact = str(root)

    def open(self, backend: str, precision: str, opener):
        """The runner, or None after a skipped row saying why it cannot run here."""
        from l2v.bench import runners

        self.progress.set_description(f"loading {backend}/{precision}")
        if backend == "trt" and (reason := runners.trt_unavailable_reason() if precision == "fp32"
                                 else trt_engine_unavailable()):
            self.rows.skip("backend", reason, backend="trt", precision=precision)
            return None
        t0 = time.perf_counter()
        try:
            runner = opener()
            runner.run(self.pre.batch(["smoke test"]))
        except runners.runner_errors() as e:
            self.rows.skip("backend", f"could not load or run: {str(e).splitlines()[0][:200]}",
                           backend=backend, precision=precision)
            return None
        where = {"backend": runner.backend, "precision": runner.precision}
        self.rows.add("load_time", time.perf_counter() - t0, "s", **where)
        self.rows.add("model_size", runner.size_bytes / 1e6 if runner.size_bytes else None, "MB", **where,
                      dtype=runner.dtype)
        if self.cfg is None:
            self.rows.skip("roofline", "no config.json in the artifact (exported with --no-torch-weights)", **where)
        if self.ref_label is None and runner.dtype == "fp32":
            self.ref_label = runner.label
        return runner

    def memory(self, runner) -> None:
        from l2v.bench.memprobe import probe_in_subprocess
        from l2v.errors import L2VError

        if not self.config.memory_probe:
            self.rows.skip("peak_rss", "--no-memory-probe", backend=runner.backend, precision=runner.precision)
            return
        batch, seq = min(8, self.config.mix_batch), self.config.eval_max_length
        self.progress.set_description(f"memory {runner.label}")
        try:
            res = probe_in_subprocess(self.root, runner.backend, runner.precision, batch, seq, self.device,
                                      self.config.threads)
        except L2VError as e:
            self.rows.skip("peak_rss", str(e), backend=runner.backend, precision=runner.precision)
            return
        record_memory(self.rows, runner, res, batch, seq)

    def measure(self, group: list, peaks: dict) -> None:
        """Grid and length mix for the runners of `group` together (round-robin), then quality corpora."""
        config, main = self.config, self.evalsets[0]
        starts = {}
        for r in group:
            lib = library(r.backend)
            starts[r.label] = 0.25 * (peaks.get((lib, r.dtype)) or peaks.get(("torch", "fp32")) or 1e10)
        grid = Grid({r.label: r.run for r in group}, self.cfg, self.vocab, config.timing, config.cell_budget_s, starts)
        record_grid(self.rows, group, grid, config, self.progress)
        self.progress.set_description(f"length mix {main.name}")
        mix = encode_rows({r.label: r.run for r in group}, self.pre, self.tokenized[main.name], config.mix_batch,
                          self.cfg, self.dim)
        for r in group:
            record_mix(self.rows, r, mix[r.label], main, config.mix_batch)
            self.embeddings[r.label] = {main.name: mix[r.label].embeddings}
        self.progress.update(len(group))
        for r in group:
            self.quality_encodes(r)
            if self.cap is not None and r.backend in ("hf", "torch", "packed"):
                record_fits(self.rows, r, config, self.vocab, self.cap)

    def quality_encodes(self, runner) -> None:
        others = self.evalsets[1:]
        if not self.config.full_quality and runner.dtype == "fp32" and runner.label != self.ref_label:
            self.rows.skip("quality", f"fp32 like the reference {self.ref_label} (the fidelity rows show they "
                           "agree): task quality not recomputed on the other corpora (--full-quality does)",
                           backend=runner.backend, precision=runner.precision)
            self.progress.update(len(others))
            return
        for corpus in others:
            self.progress.set_description(f"{runner.label} embed {corpus.name}")
            res = encode_rows({"r": runner.run}, self.pre, self.tokenized[corpus.name], self.config.mix_batch,
                              None, self.dim)
            self.embeddings[runner.label][corpus.name] = res["r"].embeddings
            self.progress.update(1)

    def score(self) -> None:
        """Fidelity on the benchmark corpus against the reference (the first fp32 runner: the HF baseline
        on CPU), and task quality on every corpus a runner embedded."""
        if self.ref_label is None:
            return
        main = self.evalsets[0].name
        ref = self.embeddings[self.ref_label][main]
        for label, embs in self.embeddings.items():
            backend, precision = label.split("/", 1)
            where = {"backend": backend, "precision": precision}
            for metric, val, unit in fidelity_metrics(ref, embs[main]):
                self.rows.add(metric, val, unit, **where, reference=self.ref_label, corpus=main)
            for corpus in self.evalsets:
                if corpus.name in embs:
                    for metric, val, unit in task_metrics(corpus, embs[corpus.name], self.config.seed):
                        self.rows.add(metric, val, unit, **where, kind="quality", corpus=corpus.name,
                                      texts=len(corpus))


def bench_artifact(root: Path, config, device: str, evalsets, rows: Rows, cap, progress, reprobe) -> None:
    """Runners measured together (default) or one at a time (`config.sequential`, less memory)."""
    bench = ArtifactBench(root, config, device, evalsets, rows, cap, progress)
    plan = runner_plan(bench.artifact, config, device)
    groups = [[p] for p in plan] if config.sequential else [plan]
    peaks = reprobe()
    for group in groups:
        runners = []
        for backend, precision, opener in group:
            runner = bench.open(backend, precision, opener)
            progress.update(1)
            if runner is not None:
                runners.append(runner)
                bench.memory(runner)
        if runners:
            bench.measure(runners, peaks)
        for r in runners:
            r.close()
        peaks = reprobe()
    bench.score()
