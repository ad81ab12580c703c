"""Peak RSS of ONNX Runtime opening and running a big fp16 graph, under alternative session options
(issue 19: the streamed export's validation child). Each option set runs in a fresh process; RSS does not
depend on load (times do: they are marked with the load average).

    python bench/ort_memory.py make MODEL OUT [--adapter A ...]   # the streamed fp16 graph + batches.npz
    python bench/ort_memory.py measure OUT [--only NAME ...]   # -> bench/results/ort_memory_<OUT's name>.{json,md}

`make` writes only the graph (no reference, no validation): bench/big_export.py measures whole exports.
Option sets: `default` and `low-memory` are l2v.runtime.onnx.session as the library makes them; the
others set ORT options directly, to show why low-memory is what it is.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OPTION_SETS = {  # name -> (graph optimization level, execution order, cpu arena)
    "default": None,
    "disable-all": ("ORT_DISABLE_ALL", "DEFAULT", True),
    "basic": ("ORT_ENABLE_BASIC", "DEFAULT", True),
    "all, no ConstantFolding": ("ORT_ENABLE_ALL", "DEFAULT", True),
    "disable-all + priority order": ("ORT_DISABLE_ALL", "PRIORITY_BASED", True),
    "low-memory": None,  # disable-all + priority order + no arena, through the library's factory
}


def make(model: str, out: Path, adapters: list[str]) -> None:
    from l2v.export.build import resolve_lengths
    from l2v.export.options import ExportOptions, default_texts
    from l2v.export.spec import OnnxExportSpec
    from l2v.export.stream import prepare, write_graph
    from l2v.export.write import validation_batches
    from l2v.model.load import load_config
    from l2v.model.source import resolve_model
    from l2v.runtime.onnx_child import save_batches

    out.mkdir(parents=True, exist_ok=True)
    opts = ExportOptions(adapters=adapters, dtype="fp16", stream="on", progress=False)
    opts.st = None
    opts.check()
    source = resolve_model(model)
    config = load_config(source)
    resolve_lengths(source, config, opts)
    built = prepare(source, config, opts, print)
    save_batches([b.as_dict() for b in validation_batches(built.preprocessor(), default_texts())],
                 out / "batches.npz")
    write_graph(built, out, OnnxExportSpec(opset=opts.opset), "fp16", print, True, False)
    (out / "source.json").write_text(json.dumps({"model": model, "adapters": adapters}))


def probe(graph: str, batches: str, name: str) -> dict:
    """In this (fresh) process: open `graph` under option set `name`, run every batch, report memory."""
    import onnxruntime as ort

    from l2v.resources import GiB, process_memory
    from l2v.runtime.onnx import session
    from l2v.runtime.onnx_child import load_batches

    def mem() -> dict:
        return {k: round(v / GiB, 3) for k, v in process_memory().items()}

    t = time.perf_counter()
    if OPTION_SETS[name] is None:
        sess = session(graph, spinning=False, low_memory=name == "low-memory")
    else:
        level, order, arena = OPTION_SETS[name]
        so = ort.SessionOptions()
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        so.execution_order = getattr(ort.ExecutionOrder, order)
        so.enable_cpu_mem_arena = arena
        off = ["ConstantFolding"] if "ConstantFolding" in name else None
        sess = ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"], disabled_optimizers=off)
    rec = {"options": name, "open_s": round(time.perf_counter() - t, 1), "after_open_gib": mem()}
    t = time.perf_counter()
    output = sess.get_outputs()[0].name
    for b in load_batches(batches)[0]:
        sess.run([output], b)
    rec["run_s"] = round(time.perf_counter() - t, 1)
    rec["after_run_gib"] = mem()
    rec["peak_rss_gib"] = rec["after_run_gib"]["peak"]
    return rec


def measure(out: Path, only: list[str]) -> None:
    graph = out / "model_fp16.onnx"
    data_gb = (out / "model_fp16.onnx.data").stat().st_size / 1e9
    rows = []
    for name in only or OPTION_SETS:
        cmd = [sys.executable, __file__, "probe", str(graph), str(out / "batches.npz"), name]
        res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        rec = json.loads(res.stdout.strip().splitlines()[-1])
        rec["load"] = round(os.getloadavg()[0], 1)
        print(json.dumps(rec))
        rows.append(rec)
    RESULTS.mkdir(exist_ok=True)
    name = f"ort_memory_{out.resolve().name}"
    (RESULTS / f"{name}.json").write_text(json.dumps({"graph": str(graph), "data_gb": data_gb, "rows": rows},
                                                        indent=1))
    lines = [f"fp16 graph {graph} ({data_gb:.2f} GB external data)", "",
             "| options | peak RSS GiB | anon / file after run GiB | open s | run s (under load) |",
             "|---|---|---|---|---|"]
    for r in rows:
        a = r["after_run_gib"]
        lines.append(f"| {r['options']} | {r['peak_rss_gib']} | {a.get('anon')} / {a.get('file')} | {r['open_s']} | "
                     f"{r['run_s']} (load {r['load']}) |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("model")
    m.add_argument("out", type=Path)
    m.add_argument("--adapter", action="append", default=[])
    s = sub.add_parser("measure")
    s.add_argument("out", type=Path)
    s.add_argument("--only", action="append", default=[], choices=list(OPTION_SETS))
    p = sub.add_parser("probe")  # one option set in this process (measure runs it in a fresh one)
    p.add_argument("graph")
    p.add_argument("batches")
    p.add_argument("name", choices=list(OPTION_SETS))
    a = ap.parse_args()
    if a.cmd == "make":
        make(a.model, a.out, a.adapter)
    elif a.cmd == "measure":
        measure(a.out, a.only)
    else:
        print(json.dumps(probe(a.graph, a.batches, a.name)))


if __name__ == "__main__":
    main()
