"""The CPU engines side by side, one run (issue 17): same model, same texts, same batches.

    PYTHONPATH=. /work/venvs/ov/bin/python bench/cpu_engines.py \
        --models smollm2=ARTIFACT[,qwen05=ARTIFACT] [--docs 2225] [--max-tokens 128] [--batch-sizes 1,32] \
        [--build] [--peers-python PY[=GROUP+GROUP],...] [--out bench/results/cpu_engines]

Engines (rows): hf/fp32 (transformers AutoModel, the baseline), ort/fp32, ort/int8-smooth, ort/w8 (ONNX
Runtime, l2v's variants), ov/ov-fp32, ov/ov-int8 (OpenVINO IR, l2v's `openvino` kind), and the peers
sentence-transformers offers (torch, its OpenVINO backend and static int8 helper, its ONNX backend and
dynamic int8 helper), run by bench/cpu_engines_st.py in the peers' own venv (they pin another
transformers); what does not install or load there is a row with the reason. The matmul probe (ORT fp32
MatMul vs u8s8 MatMulInteger, 1024^3) is the ceiling an int8 engine could reach here.

Per engine and model:
- recall@10 / mean and min cosine vs our ORT fp32 on `--docs` BBC documents at `--max-tokens` tokens
  (load-independent); each l2v engine embeds them **alone in a fresh process**, which also gives its
  peak RSS (VmHWM: load + embedding the corpus in batches of 32);
  `--time-only hf/fp32` skips an engine's corpus pass (its row is timed only);
- speed: every engine loaded in this process and timed **interleaved call by call** at each batch size
  on full-length rows (`--max-tokens` tokens): p50/p99 ms per call, texts/s and tokens/s, x ORT fp32.
The peers' venvs (sentence-transformers pins another transformers than l2v; optimum-onnx pins <4.58):
    python -m venv ov-peers && ov-peers/bin/pip install torch==2.13.0 sentence-transformers==6.2.0 \
        "optimum-intel[openvino,nncf]" datasets   # datasets: the static int8 helper imports it
    python -m venv peers-onnx && peers-onnx/bin/pip install torch==2.13.0 sentence-transformers==5.7.0 \
        transformers==4.57.6 "optimum-onnx[onnxruntime]"
Variants missing from an artifact are built with `--build` (l2v's quantize_artifact, under the recall
gate), else reported as missing with the command that makes them.

Output: OUT/cpu_engines.json, OUT/cpu_engines.md (table), OUT/cpu_engines.png (speed vs recall).
Timings on a loaded machine are relative only: the load average is recorded before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
L2V_VARIANTS = [("ort", "fp32"), ("ort", "int8-smooth"), ("ort", "w8"), ("ov", "ov-fp32"), ("ov", "ov-int8")]
BUILD_SPECS = {"int8-smooth": "int8-smooth", "w8": "w8", "ov-fp32": "ov-fp32", "ov-int8": "ov-int8"}
DEFAULT_PEERS_PYTHON = "/work/venvs/ov-peers/bin/python"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# ------------------------------------------------------------------------------------------ texts
def corpus_batches(artifact, docs: int, max_tokens: int, data_dir):
    """(texts, order, batches): `docs` BBC documents (stratified sample), padded in length-sorted batches
    of 32; `order[i]` is the text index of embedding row i."""
    from l2v.eval.corpora import load_bbc

    texts = load_bbc(data_dir).sample(docs).texts
    pre = artifact.preprocessor(max_tokens)
    rows = pre.rows(texts)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    batches = [pre.pad([rows[i] for i in order[s:s + 32]]) for s in range(0, len(order), 32)]
    return texts, np.array(order), batches


def speed_batch(batches, max_tokens: int, size: int):
    """`size` rows of full length: the longest texts (all at max_tokens when the corpus has enough)."""
    from l2v.text.batch import Batch

    big = batches[-1].as_dict()
    reps = -(-size // len(batches[-1]))
    arrays = {k: np.concatenate([v] * reps)[:size] for k, v in big.items()}
    return Batch.of(arrays)


# ------------------------------------------------------------------------------------------ engines
def open_engine(artifact, backend: str, variant: str, threads):
    from l2v.bench import runners

    if backend == "hf":
        return runners.open_hf(artifact, "cpu")
    return runners.open_ort(artifact, variant, "cpu", threads, label=backend)


def child(args) -> int:
    """One engine alone: embed the saved batches, save the embeddings, print the peak RSS as JSON."""
    from l2v.artifact import open_artifact
    from l2v.bench.memory import peak_rss_mb
    from l2v.text.batch import Batch

    data = np.load(args.child_batches)
    n = int(data["n"])
    batches = [Batch.of({k: data[f"{i}_{k}"] for k in ("input_ids", "attention_mask", "pooling_mask")
                         if f"{i}_{k}" in data}) for i in range(n)]
    del data
    t = time.perf_counter()
    r = open_engine(open_artifact(args.artifact), args.child_backend, args.child_variant, args.threads)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    emb = np.concatenate([r.run(b) for b in batches]).astype(np.float32)
    np.save(args.child_out, emb)
    print(json.dumps({"peak_rss_mb": round(peak_rss_mb() or 0, 1), "load_s": round(load_s, 2),
                      "embed_s": round(time.perf_counter() - t, 2), "size_bytes": r.size_bytes}))
    return 0


def run_child(art_path, backend, variant, batch_file, out_npy, threads) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-backend", backend, "--child-variant", variant,
           "--child-batches", str(batch_file), "--child-out", str(out_npy), "--models", f"x={art_path}"]
    if threads:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1][:400]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def save_batches(batches, path: Path) -> None:
    arrays = {"n": np.array(len(batches))}
    for i, b in enumerate(batches):
        for k, v in b.items():
            arrays[f"{i}_{k}"] = v
    np.savez(path, **arrays)


# ------------------------------------------------------------------------------------------ timing
def interleaved(runs: dict, batch, min_seconds: float, max_reps: int) -> dict:
    """{label: p50/p99 ms} with the runners called in turn (first caller rotating), so load hits all alike."""
    times = {k: [] for k in runs}
    for r in runs.values():
        r.run(batch)
    labels, t0, i = list(runs), time.perf_counter(), 0
    while True:
        for k in labels[i % len(labels):] + labels[:i % len(labels)]:
            t = time.perf_counter()
            runs[k].run(batch)
            times[k].append(time.perf_counter() - t)
        i += 1
        if i >= max_reps or (i >= 3 and time.perf_counter() - t0 > min_seconds):
            break
    return {k: {"p50_ms": round(1e3 * float(np.percentile(v, 50)), 2), "p99_ms": round(1e3 * float(np.percentile(v, 99)), 2),
                "n": len(v)} for k, v in times.items()}


def probe(threads) -> dict:
    """ORT fp32 / int8 and, with openvino installed, OpenVINO FullyConnected f32 / bf16 GFLOP/s (1024^3)."""
    from l2v.bench.probe import ort_peak, ov_peak

    f, q = ort_peak("fp32", threads), ort_peak("int8", threads)
    out = {"ort_fp32_gflops": round(f["flops_per_s"] / 1e9, 1), "ort_int8_gops": round(q["flops_per_s"] / 1e9, 1),
           "int8_over_fp32": round(q["flops_per_s"] / f["flops_per_s"], 2)}
    try:
        of, ob = ov_peak("fp32", threads), ov_peak("bf16", threads)
    except ImportError:
        return out
    out.update(ov_fp32_gflops=round(of["flops_per_s"] / 1e9, 1), ov_bf16_gflops=round(ob["flops_per_s"] / 1e9, 1),
               ov_bf16_ran=ob["ran"])
    return out


# ------------------------------------------------------------------------------------------ one model
def wanted(args, label: str) -> bool:
    return not args.engines or label in args.engines


def ensure_variants(art_path: Path, args) -> dict:
    """{variant: None (present) | 'missing: ...' | 'refused: ...'}; builds missing ones with --build."""
    from l2v.artifact import open_artifact
    from l2v.errors import L2VError

    have = set(open_artifact(art_path).manifest.variants)
    status = {}
    for b, v in args.variants:
        if v in have or not wanted(args, f"{b}/{v}"):
            status[v] = None
        elif not args.build or v not in BUILD_SPECS:
            spec = BUILD_SPECS.get(v, f"METHOD:name={v},...")
            status[v] = f"missing: run l2v-quantize {art_path} --quant {spec}"
            status[v] += " (or pass --build)" if v in BUILD_SPECS else ""
        else:
            from l2v.quantize import quantize_artifact

            log(f"building {v} in {art_path}")
            try:
                quantize_artifact(art_path, [BUILD_SPECS[v]], speed=False, progress=True, verify=not args.no_verify)
                status[v] = None
            except L2VError as e:  # the gate refused it, or a dependency is missing: a row says so
                status[v] = f"not built: {e}"
                log(f"{v} {status[v]}")
    return status


def measure_model(name: str, art_path: Path, args, work: Path) -> dict:
    from l2v.artifact import open_artifact

    status = ensure_variants(art_path, args)
    art = open_artifact(art_path)
    texts, order, batches = corpus_batches(art, args.docs, args.max_tokens, args.data_dir)
    bfile = work / f"{name}_batches.npz"
    save_batches(batches, bfile)
    engines = [(b, v) for b, v in [("hf", "fp32")] + args.variants
               if status.get(v) is None and wanted(args, f"{b}/{v}")]
    rows = {f"{b}/{v}": {"engine": f"{b}/{v}", "skipped": status[v]} for b, v in args.variants if status.get(v)}
    emb = {}
    for b, v in engines:
        label = f"{b}/{v}"
        if label in args.time_only:
            rows[label] = {"engine": label, "note": "timed only (--time-only): no corpus pass, so no recall or RSS"}
            continue
        log(f"{name}: {label} alone in a fresh process ({len(texts)} docs)")
        out = run_child(art_path, b, v, bfile, work / f"{name}_{b}_{v}.npy", args.threads)
        rows[label] = {"engine": label, **out}
        if "error" not in out:
            emb[label] = np.load(work / f"{name}_{b}_{v}.npy")
    ref = emb.get("ort/fp32")
    for label, e in emb.items():
        rows[label].update(score(ref, e))
    peers = run_peers(name, art_path, texts, order, args, work)
    for label, r in peers.get("rows", {}).items():
        rows[label] = r
        got, own = peers.get("emb", {}).get(label), peers.get("emb", {}).get("st/torch")
        rows[label].update(score(ref, got))
        if own is not None and label != "st/torch":
            rows[label]["vs_st_torch"] = score(own, got)
    rows.update({k: {"engine": k, "skipped": v} for k, v in peers.get("errors", {}).items()})
    speed_rows(name, art, engines, rows, batches, args)
    base = rows.get("ort/fp32", {})
    for label in peers.get("rows", {}):  # timed in the peers' process: x ORT fp32 across processes
        for bs in args.batch_sizes:
            s, b = rows[label].get(f"b{bs}"), base.get(f"b{bs}", {}).get("p50_ms")
            if s and b:
                s["x_ort_fp32"] = round(b / s["p50_ms"], 2)
    return {"artifact": str(art_path), "docs": len(texts), "max_tokens": args.max_tokens, "rows": rows,
            "peers_meta": peers.get("meta", {})}


def score(ref, got) -> dict:
    """Fidelity vs `ref`, or why there is none (a peer returning NaN is a finding, not a crash)."""
    from l2v.errors import ValidationError
    from l2v.quantize.measure import fidelity

    if ref is None or got is None:
        return {}
    if got.shape != ref.shape:
        return {"fidelity_error": f"shape {got.shape} vs {ref.shape}"}
    try:
        return fidelity(ref, got)
    except ValidationError as e:
        return {"fidelity_error": str(e)}


def speed_rows(name, art, engines, rows, batches, args) -> None:
    runs = {}
    for b, v in engines:
        label = f"{b}/{v}"
        if "error" not in rows[label]:
            runs[label] = open_engine(art, b, v, args.threads)
    for bs in args.batch_sizes:
        batch = speed_batch(batches, args.max_tokens, bs)
        tokens = int(batch["attention_mask"].sum())
        log(f"{name}: timing {list(runs)} at batch {bs} x {batch['input_ids'].shape[1]} tokens, interleaved")
        t = interleaved(runs, batch, args.min_seconds, args.max_reps)
        base = t.get("ort/fp32", {}).get("p50_ms")
        for label, s in t.items():
            rows[label][f"b{bs}"] = {**s, "texts_per_s": round(bs / s["p50_ms"] * 1e3, 1),
                                     "tokens_per_s": round(tokens / s["p50_ms"] * 1e3),
                                     "x_ort_fp32": round(base / s["p50_ms"], 2) if base else None}
    for r in runs.values():
        r.close()


def peer_venvs(spec: str) -> list[tuple[str, str]]:
    """`PY[=GROUP+GROUP],...` -> [(python, "group,group")]; no groups: all (torch, openvino, onnx)."""
    out = []
    for item in filter(None, spec.split(",")):
        py, _, groups = item.partition("=")
        out.append((py, groups.replace("+", ",")))
    return out


def run_peers(name, art_path, texts, order, args, work: Path) -> dict:
    """sentence-transformers' backends in the peers' venv(s); embeddings come back in our row order. One venv
    per group of peers where they pin different transformers (optimum-onnx wants <4.58, optimum-intel 5.x)."""
    if not args.peers_python:
        return {"errors": {"st/*": "skipped: --peers-python ''"}}
    tfile = work / f"{name}_texts.json"
    tfile.write_text(json.dumps(texts))
    merged = {"meta": {}, "rows": {}, "errors": {}, "emb": {}}
    for i, (py, groups) in enumerate(peer_venvs(args.peers_python)):
        res = run_peer_venv(name, art_path, tfile, order, args, work / f"{name}_st{i}", py, groups)
        merged["meta"][py] = res.get("meta", {})
        merged["rows"].update(res.get("rows", {}))
        merged["emb"].update(res.get("emb", {}))
        for label, err in res.get("errors", {}).items():
            merged["errors"][label if label != "st/*" else f"st/* ({groups or 'all'})"] = err
    return merged


def run_peer_venv(name, art_path, tfile, order, args, work: Path, python: str, groups: str) -> dict:
    if not Path(python).exists():
        return {"errors": {"st/*": f"skipped: {python} does not exist (a venv with sentence-transformers[openvino] "
                                   "or [onnx])"}}
    out = work.with_suffix(".json")
    cmd = [python, str(HERE / "cpu_engines_st.py"), str(art_path), "--texts", str(tfile),
           "--max-tokens", str(args.max_tokens), "--batch-sizes", ",".join(map(str, args.batch_sizes)),
           "--min-seconds", str(args.min_seconds), "--max-reps", str(args.max_reps), "--work", str(work),
           "--out", str(out)] + (["--groups", groups] if groups else [])
    log(f"{name}: sentence-transformers peers ({groups or 'all'}) in {python}")
    failed = None
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.peers_timeout)
        if p.returncode:
            failed = f"peers script failed: {(p.stderr.strip().splitlines() or ['?'])[-1][:300]}"
    except subprocess.TimeoutExpired:
        failed = f"peers timed out after {args.peers_timeout} s (the rows finished before are kept)"
    if not out.exists():
        return {"errors": {"st/*": failed or "peers script wrote nothing"}}
    res = json.loads(out.read_text())
    if failed:
        res["errors"]["st/*"] = failed
    npz_path = work / "embeddings.npz"
    npz = np.load(npz_path) if npz_path.exists() else {}
    res["emb"] = {k.replace("__", "/"): np.asarray(npz[k])[order] for k in getattr(npz, "files", [])}
    return res


# ------------------------------------------------------------------------------------------ report
COLUMNS = ["engine", "recall@10", "mean_cosine", "peak_rss_mb"]


def markdown(result: dict) -> str:
    bs = result["meta"]["batch_sizes"]
    head = COLUMNS + [f"b{b} {c}" for b in bs for c in ("p50 ms", "p99 ms", "texts/s", "x ORT fp32")] + ["note"]
    lines = ["# CPU engines side by side\n", f"Command: `{result['meta']['command']}`  ",
             f"Machine: {result['meta']['cpu']}, {result['meta']['cores']} cores, "
             f"{' '.join(result['meta'].get('cpu_flags', []))}; int8 GEMM: {result['meta'].get('int8_gemm')}; "
             "load average before "
             f"{result['meta']['load_before']}, after {result['meta']['load_after']}  ",
             f"Matmul probe (1024^3; ORT, and OpenVINO FullyConnected): {result['probe']}  ",
             f"Versions: {result['meta']['versions']}\n"]
    for model, m in result["models"].items():
        lines += [f"## {model} ({m['docs']} BBC docs at {m['max_tokens']} tokens; recall vs ort/fp32)\n",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in m["rows"].values():
            cells = [r.get(c, "") for c in COLUMNS]
            for b in bs:
                s = r.get(f"b{b}", {})
                cells += [s.get("p50_ms", ""), s.get("p99_ms", ""), s.get("texts_per_s", ""), s.get("x_ort_fp32", "")]
            cells.append(r.get("skipped") or r.get("error") or r.get("fidelity_error") or r.get("note", ""))
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        reps = {r["engine"]: "/".join(str(r[f"b{b}"].get("n", "?")) for b in bs) for r in m["rows"].values()
                if all(f"b{b}" in r for b in bs)}
        lines += ["", f"Timed calls per engine (batch {'/'.join(map(str, bs))}): {reps}"]
        own = {k: {x: r["vs_st_torch"].get(x) for x in ("recall@10", "mean_cosine")}
               for k, r in m["rows"].items() if r.get("vs_st_torch")}
        if own:
            lines.append(f"Peers vs their own st/torch (same causal model): {own}")
        for py, meta in m.get("peers_meta", {}).items():
            lines.append(f"Peers' venv {py}: {meta}")
        lines.append("")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bs = max(result["meta"]["batch_sizes"])
    fig, ax = plt.subplots(figsize=(7, 5))
    for model, m in result["models"].items():
        for r in m["rows"].values():
            s = r.get(f"b{bs}", {})
            if "recall@10" in r and s.get("x_ort_fp32"):
                ax.scatter(s["x_ort_fp32"], r["recall@10"])
                ax.annotate(f"{model}:{r['engine']}", (s["x_ort_fp32"], r["recall@10"]), fontsize=7)
    ax.axhline(0.95, ls="--", c="grey")
    ax.set_xlabel(f"throughput x ORT fp32 (batch {bs})")
    ax.set_ylabel("recall@10 vs our fp32")
    ax.set_title(f"speed vs recall (load {result['meta']['load_after']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in ("onnxruntime", "openvino", "nncf", "torch", "transformers"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", required=True, help="comma list of NAME=ARTIFACT_DIR")
    p.add_argument("--docs", type=int, default=2225, help="BBC documents (stratified sample; default all 2,225)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--min-seconds", type=float, default=10.0, help="timing per batch size (all engines together)")
    p.add_argument("--max-reps", type=int, default=50)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=None, help="the dir holding bbcnews/ (default: L2V_DATA_DIR)")
    p.add_argument("--engines", default="", help="comma list of l2v engine labels to run (default all: hf/fp32, "
                   "ort/fp32, ort/int8-smooth, ort/w8, ov/ov-fp32, ov/ov-int8); ort/fp32 is the recall reference")
    p.add_argument("--time-only", default="", help="comma list of engine labels timed but not run over the corpus "
                   "(no recall, no peak RSS), e.g. hf/fp32, whose vectors the export already checks against ORT fp32")
    p.add_argument("--variants", default=",".join(f"{b}/{v}" for b, v in L2V_VARIANTS),
                   help="comma list of BACKEND/VARIANT rows besides hf/fp32 (BACKEND: ort or ov; "
                   "default: %(default)s); "
                   "name an artifact's own variants, e.g. ov/ov-int8-acc for an ov-int8 built with name=ov-int8-acc")
    p.add_argument("--build", action="store_true", help="build missing variants (int8-smooth, w8, ov-fp32, ov-int8)")
    p.add_argument("--no-verify", action="store_true", help="--build without checking the files' sha256 (an "
                   "artifact of schema 1 has none recorded)")
    p.add_argument("--peers-python", default=DEFAULT_PEERS_PYTHON, help="python of the sentence-transformers "
                   "venv, or a comma list PY=GROUP+GROUP,... to run groups (torch, openvino, onnx) in different "
                   "venvs, e.g. ov-peers/bin/python=torch+openvino,peers-onnx/bin/python=onnx ('' to skip)")
    p.add_argument("--peers-timeout", type=int, default=7200, help="seconds for all the peers of one model")
    p.add_argument("--out", default=str(HERE / "results" / "cpu_engines"))
    for hidden in ("--child-backend", "--child-variant", "--child-batches", "--child-out"):
        p.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    args.engines = [e for e in args.engines.split(",") if e]
    args.time_only = [e for e in args.time_only.split(",") if e]
    if "ort/fp32" in args.time_only:
        p.error("--time-only cannot name ort/fp32: its corpus pass is the recall reference")
    args.variants = [tuple(x.split("/", 1)) for x in args.variants.split(",") if x]
    bad = [b for b, *_ in args.variants if b not in ("ort", "ov")] + [x for x in args.variants if len(x) != 2]
    if bad or ("ort", "fp32") not in args.variants:
        p.error(f"--variants needs BACKEND/VARIANT items with BACKEND ort or ov, and ort/fp32 (the recall "
                f"reference); got {bad or args.variants}")
    args.models = dict(kv.split("=", 1) for kv in args.models.split(","))
    return args


def main(argv=None) -> int:
    from l2v.bench.env import cpu_name
    from l2v.runtime.cpu import flags_of_note, int8_gemm

    args = parse(argv)
    if args.child_backend:
        args.artifact = next(iter(args.models.values()))
        return child(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # a kill (timeout, Ctrl-C) unwinds: the temporary embeddings and batches are removed, not left in /tmp
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = load_average()
    result = {"meta": {"command": " ".join([Path(sys.executable).name] + sys.argv), "cores": os.cpu_count(),
                       "cpu": cpu_name(), "int8_gemm": int8_gemm(), "load_before": load_before,
                       "cpu_flags": flags_of_note(),
                       "batch_sizes": args.batch_sizes, "versions": versions(),
                       "note": "timings interleaved in one process; relative (x ORT fp32) unless the machine was idle"},
              "probe": probe(args.threads), "models": {}}
    with tempfile.TemporaryDirectory(prefix="l2v_cpu_engines_") as tmp:
        for name, path in args.models.items():
            result["models"][name] = measure_model(name, Path(path).resolve(), args, Path(tmp))
            (out / "cpu_engines.json").write_text(json.dumps(result, indent=2, default=str))
    result["meta"]["load_after"] = load_average()
    (out / "cpu_engines.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "cpu_engines.md").write_text(markdown(result))
    plot(result, out / "cpu_engines.png")
    log(f"wrote {out}/cpu_engines.{{json,md,png}}")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
