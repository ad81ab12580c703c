"""Peak RSS per stage, time and disk of the streamed `l2v-export` on synthetic 7-8B-shaped checkpoints.

    python bench/big_export.py run --shape llama3-8b --layers 4 16 --data /work/data/big --dtype fp16
    python bench/big_export.py measure MODEL OUT --dtype fp16 [--quant w8 ...]   (one export, one JSON line)

`run` writes each checkpoint with bench/make_synthetic.py when it is missing (LLM2Vec MNTP + supervised
adapters beside it), exports it in a fresh child process (`measure`) and writes bench/results/big_export.json
and .md; the artifact is deleted after it is measured unless --keep. `measure` runs `l2v.export_model`
in-process: each progress step ("[N] what") starts a stage, whose peak is the process's VmHWM (reset with
/proc/self/clear_refs at every stage start, so each figure is that stage's own peak); ONNX Runtime's
validation child reports its own peak in the manifest. RSS and disk do not depend on load; times do.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# "[k/N] what" (also the older "[k] what") and quantization's own steps, "[quantize] what"
STEP = re.compile(r"^\[(\d+(?:/\d+)?|quantize)\] (.*?)(?: \(t=\d+s\))?$")
GiB = 2 ** 30


def _status(key: str) -> int:
    """VmHWM / VmRSS of this process, bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class StageMeter:
    """A stderr tee that closes a stage at every "[k/N] what" progress line: {stage: peak bytes, seconds}."""

    def __init__(self, stream):
        self.stream, self.stages, self.current, self.t = stream, [], "start (imports)", time.perf_counter()

    def write(self, text: str) -> int:
        for line in text.splitlines():
            m = STEP.match(line.strip())
            if m:
                self.close()
                self.current = ("quantize: " if m.group(1) == "quantize" else "") + m.group(2)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        now = time.perf_counter()
        self.stages.append({"stage": self.current, "peak_rss_gib": round(_status("VmHWM") / GiB, 3),
                            "seconds": round(now - self.t, 1)})
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS: the next stage's own peak
        self.t = now


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def depth(model: Path) -> int:
    """num_hidden_layers of a checkpoint directory or a GGUF file (its metadata only)."""
    if model.is_file():
        from gguf import GGUFReader

        r = GGUFReader(str(model))
        arch = r.fields["general.architecture"].contents()
        return int(r.fields[f"{arch}.block_count"].contents())
    return json.loads((model / "config.json").read_text())["num_hidden_layers"]


def measure(args) -> dict:
    import l2v

    model = Path(args.model)
    adapters = [str(model.with_name(model.name + s)) for s in ("-mntp", "-supervised")] if args.adapters else []
    meter = StageMeter(sys.stderr)
    sys.stderr = meter
    t0 = time.perf_counter()
    quant = {}
    if args.quant and args.eval_texts:  # the gate's texts: one pass of an 8B graph over 373 takes hours here
        from l2v.quantize.texts import default_eval_texts

        quant["eval"] = default_eval_texts()[:args.eval_texts]
    try:
        out = l2v.export_model(str(model), args.out, adapters=adapters, dtype=args.dtype, quant=args.quant or (),
                               stream="on", max_length=args.max_length, overwrite=True, progress=True, **quant)
    finally:
        meter.close()
        sys.stderr = meter.stream
    manifest = json.loads((Path(out) / "l2v.json").read_text())
    variants = manifest["variants"]
    rec = {"model": model.name, "layers": depth(model),
           "dtype": args.dtype, "adapters": len(adapters), "quant": args.quant or [],
           "checkpoint_gb": round(du(model) / 1e9, 3), "artifact_gb": round(du(Path(out)) / 1e9, 3),
           "files_gb": {f["path"]: round(f["size"] / 1e9, 3) for v in variants.values() for f in v["files"]
                        if "size" in f},
           # ru_maxrss is reset with VmHWM by clear_refs: the main process's peak is its stages' largest
           "peak_rss_gib": max(s["peak_rss_gib"] for s in meter.stages),
           "children_peak_rss_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GiB, 3),
           "ort_validation": _ort(variants),
           "validation": {k: {m: v["validation"][m] for m in ("min_cosine", "max_abs_diff", "rows")}
                          for k, v in variants.items() if v.get("validation")},
           "gate": {k: {m: v["gate"].get(m) for m in ("mean_cosine", "recall@10", "size_bytes", "session", "ort",
                                                      "reference_ort")}
                    for k, v in variants.items() if v.get("gate")},
           "stages": meter.stages,
           "with_ort_child_gib": _with_children(meter.stages, variants), "seconds": round(time.perf_counter() - t0, 1),
           "resource_plan": manifest.get("timings", {}).get("resource_plan"),
           "loadavg": round(os.getloadavg()[0], 1)}
    print(json.dumps(rec))
    return rec


def _ort(variants: dict) -> dict:
    return {k: (v.get("validation") or {}).get("ort") for k, v in variants.items()
            if (v.get("validation") or {}).get("ort")}


def _during(stages: list, prefix: str) -> float:
    """The main process's peak over the stages starting with `prefix` (an ORT child is resident then)."""
    return max([s["peak_rss_gib"] for s in stages if s["stage"].startswith(prefix)] or [0.0])


def _with_children(stages: list, variants: dict) -> float:
    """The whole export's peak counting ORT's children: main's peak while validating + the validation child,
    main's peak while the gate measured + the gate's children (reference and candidate), or main alone."""
    sums = [s["peak_rss_gib"] for s in stages]
    sums += [_during(stages, "validating") + v.get("peak_rss_gib", 0) for v in _ort(variants).values()]
    for v in variants.values():
        gate = v.get("gate") or {}
        for ort in (gate.get("ort"), gate.get("reference_ort")):
            if ort:
                sums.append(_during(stages, "quantize: measuring") + ort.get("peak_rss_gib", 0))
    return round(max(sums), 3)


def ensure_checkpoint(data: Path, shape: str, layers: int) -> Path:
    model = data / f"{shape}-L{layers}"
    if not (model / "model.safetensors.index.json").exists():
        subprocess.run([sys.executable, str(HERE / "make_synthetic.py"), shape, "--layers", str(layers),
                        "--out", str(model), "--adapters"], check=True)
    return model


def run(args) -> None:
    rows = []
    if args.append and (RESULTS / f"{args.name}.json").exists():  # keep the other depths' rows of earlier runs
        done = {f"{args.shape}-L{n}" for n in args.layers}
        rows = [r for r in json.loads((RESULTS / f"{args.name}.json").read_text()) if r.get("model") not in done]
    for layers in args.layers:
        model = ensure_checkpoint(Path(args.data), args.shape, layers)
        out = Path(args.data) / f"{model.name}-artifact"
        cmd = [sys.executable, __file__, "measure", str(model), str(out), "--dtype", args.dtype,
               "--max-length", str(args.max_length)] + [a for q in args.quant or [] for a in ("--quant", q)]
        if args.eval_texts:
            cmd += ["--eval-texts", str(args.eval_texts)]
        res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if res.returncode:
            rows.append({"model": model.name, "layers": layers, "rc": res.returncode})
        else:
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
        save(rows, args.name)


def save(rows: list, name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1))
    lines = ["| model | layers | dtype | checkpoint GB | artifact GB | stage | peak RSS GiB | s (under load) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "stages" not in r:
            lines.append(f"| {r['model']} | {r['layers']} | | | | failed rc={r.get('rc')} | | |")
            continue
        for s in r["stages"]:
            lines.append(f"| {r['model']} | {r['layers']} | {r['dtype']} | {r['checkpoint_gb']} | "
                         f"{r['artifact_gb']} | {s['stage']} | {s['peak_rss_gib']} | {s['seconds']} |")
        for k, v in r["ort_validation"].items():
            lines.append(f"| {r['model']} | {r['layers']} | {k} | | | ONNX Runtime validation child | "
                         f"{v['peak_rss_gib']} | |")
        for k, g in r.get("gate", {}).items():
            lines.append(f"| {r['model']} | {r['layers']} | {k} | | {round((g.get('size_bytes') or 0) / 1e9, 3)} | "
                         f"gate vs {r['dtype']} ({g.get('session') or 'default'} session): recall@10 "
                         f"{g.get('recall@10')}, mean cos {g.get('mean_cosine')} | | |")
            for who, ort in (("reference", g.get("reference_ort")), (k, g.get("ort"))):
                if ort:
                    lines.append(f"| {r['model']} | {r['layers']} | {k} | | | gate's ONNX Runtime child ({who}) | "
                                 f"{ort.get('peak_rss_gib')} | |")
        lines.append(f"| **{r['model']}** | {r['layers']} | {r['dtype']} | | | **whole export (main process)** | "
                     f"**{r['peak_rss_gib']}** | {r['seconds']} (load {r['loadavg']}) |")
        lines.append(f"| **{r['model']}** | {r['layers']} | {r['dtype']} | | | **whole export, main + ORT child "
                     f"(validation or gate)** | **{r['with_ort_child_gib']}** | |")
    lines += ["", *summary(rows)]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def summary(rows: list) -> list[str]:
    """One line per export: the bound (fp16 weights + 2 GiB) against the main process and the ORT child."""
    out = ["| model | layers | fp16 graph GB | bound GiB (fp16 graph + 2) | main peak GiB (its stage) | ORT child peak GiB "
           "(anon / mapped after run) | main + child GiB | s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "stages" not in r:
            continue
        top = max(r["stages"], key=lambda s: s["peak_rss_gib"])
        ort = next(iter(r["ort_validation"].values()), {})
        after = ort.get("after_run_gib", {})
        graph = sum(v for k, v in r["files_gb"].items() if k.startswith(f"model_{r['dtype']}.onnx"))
        out.append(f"| {r['model']} | {r['layers']} | {round(graph, 3)} | {round(graph * 1e9 / GiB + 2, 2)} "
                   f"| {r['peak_rss_gib']} ({top['stage'].split(' (')[0][:40]}) | {ort.get('peak_rss_gib')} "
                   f"({after.get('anon')} / {after.get('file')}) | **{r['with_ort_child_gib']}** | "
                   f"{r['seconds']} (load {r['loadavg']}) |")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--shape", default="llama3-8b")
    r.add_argument("--layers", type=int, nargs="+", default=[4, 16])
    r.add_argument("--data", required=True, help="where checkpoints and artifacts go (needs the disk)")
    r.add_argument("--keep", action="store_true", help="keep the artifacts")
    r.add_argument("--name", default="big_export", help="bench/results/NAME.{json,md}")
    r.add_argument("--append", action="store_true", help="keep NAME.json's rows of other models/depths")
    m = sub.add_parser("measure")
    m.add_argument("model")
    m.add_argument("out")
    m.add_argument("--no-adapters", dest="adapters", action="store_false")
    for p in (r, m):
        p.add_argument("--dtype", default="fp16")
        p.add_argument("--quant", action="append")
        p.add_argument("--max-length", type=int, default=512)
        p.add_argument("--eval-texts", type=int, default=None, help="with --quant: the gate on the first N "
                       "built-in eval texts (default: all)")
    t = sub.add_parser("table", help="rewrite NAME.md from NAME.json")
    t.add_argument("--name", default="big_export")
    args = ap.parse_args(argv)
    if args.cmd == "table":
        return save(json.loads((RESULTS / f"{args.name}.json").read_text()), args.name)
    measure(args) if args.cmd == "measure" else run(args)


if __name__ == "__main__":
    main()
