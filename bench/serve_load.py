"""Bounded load test of the real `l2v-serve` on loopback, against in-process `encode` on the same texts.

    python bench/serve_load.py ARTIFACT [--requests 192] [--concurrency 8,32,64] [--texts-per-request 1]
                               [--openai-level 32] [--server-args "--max-batch-size 32 --batch-wait-ms 5"]
                               [--out bench/results]

Texts: BBC News documents ($L2V_DATA_DIR/bbcnews, default /work/assets/data) cut to a fixed-seed mix of
4-96 words, or l2v's packaged validation sentences where that corpus is absent. Each level sends exactly
--requests requests from C concurrent clients (aiohttp), and one level through the real
`openai.AsyncOpenAI` client, then stops: p50/p99 latency, throughput, errors (must be 0), min cosine of
the served vectors against `encode`, and the in-process `encode(batch_size=32)` throughput measured just
before the level (same machine load). The server session's peak RSS is sampled every second; when a level
has errors, the Ray session's logs are searched for the worker kills that explain them. Figures taken on a
shared machine are labelled with its load average: final timings come from a run on an idle machine.
Writes serve_<artifact>.json / .md / .png.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KILL_PATTERNS = ("memory monitor", "due to memory pressure", "OutOfMemory", "SIGKILL", "killed", "Killing",
                 "died", "unexpectedly", "Traceback")


def load_texts(n: int, seed: int = 0) -> tuple[list[str], str]:
    root = Path(os.environ.get("L2V_DATA_DIR", "/work/assets/data")) / "bbcnews"
    files = sorted(root.glob("*/*.txt"))
    rng = random.Random(seed)
    if not files:
        from l2v.export.options import default_texts

        base = [t for t in default_texts() if t.strip()]
        return [base[i % len(base)] for i in range(n)], "l2v validation sentences"
    texts = []
    while len(texts) < n:
        words = files[rng.randrange(len(files))].read_text(errors="replace").split()
        k = rng.choice([4, 8, 16, 32, 64, 96])
        s = rng.randrange(max(1, len(words) - k))
        texts.append(" ".join(words[s:s + k]))
    return texts, f"BBC News ({root})"


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


class RssSampler:
    """Peak RSS of the server's session (all of Ray's processes), sampled every second in a thread."""

    def __init__(self, sid: int):
        self.sid, self.peak, self._stop = sid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        from l2v.serve.process import session_usage

        self.peak = max(self.peak, session_usage(self.sid)["rss_mib"])

    def _run(self):
        self.sample()  # at once, then every second: a level shorter than a second still gets a figure
        while not self._stop.wait(1.0):
            self.sample()

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.sample()


async def run_level(url: str, model: str, batches: list, concurrency: int, use_openai: bool):
    import aiohttp

    lat, errors, results = [], [], {}
    queue = list(enumerate(batches))[::-1]
    if use_openai:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
    else:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))

    async def one(texts):
        if use_openai:
            r = await client.embeddings.create(model=model, input=texts, encoding_format="float")
            return [d.embedding for d in r.data]
        async with session.post(url + "/v1/embeddings",
                                json={"model": model, "input": texts, "encoding_format": "float"}) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {body}")
            return [d["embedding"] for d in body["data"]]

    async def worker():
        while queue:
            i, texts = queue.pop()
            t = time.perf_counter()
            try:
                results[i] = np.asarray(await one(texts), dtype=np.float32)
                lat.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - a load test counts every failure and says what it was
                cause = e.__cause__ or e.__context__
                errors.append({"request": i, "error": f"{type(e).__name__}: {str(e)[:200]}",
                               "cause": f"{type(cause).__name__}: {str(cause)[:200]}" if cause else None,
                               "after_s": round(time.perf_counter() - t, 2), "at": time.strftime("%H:%M:%S")})

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    await (client.close() if use_openai else session.close())
    return lat, errors, wall, results


def ray_log_lines(srv, patterns=KILL_PATTERNS, limit: int = 40) -> list[str]:
    """Lines of the Ray session's logs (raylet, GCS, Serve controller/proxy/replicas) naming a kill."""
    out = []
    for f in sorted(Path(srv.tmp, "ray").glob("session_*/logs/**/*")):
        if not f.is_file() or f.suffix not in (".out", ".err", ".log"):
            continue
        for line in f.read_text(errors="replace").splitlines():
            if any(p.lower() in line.lower() for p in patterns):
                out.append(f"{f.name}: {line.strip()[:300]}")
    return out[-limit:]


def plot(rows: list, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aio = [r for r in rows if r["client"] == "aiohttp"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    c = [r["concurrency"] for r in aio]
    a.plot(c, [r["p50_ms"] for r in aio], "o-", label="p50")
    a.plot(c, [r["p99_ms"] for r in aio], "s--", label="p99")
    a.set_xlabel("concurrent clients")
    a.set_ylabel("latency (ms)")
    a.set_xscale("log", base=2)
    a.legend()
    b.plot(c, [r["texts_per_s"] for r in aio], "o-", label="l2v-serve")
    b.plot(c, [r["inprocess_texts_per_s"] for r in aio], "s--", label="in-process encode")
    for r in rows:
        if r["client"] != "aiohttp":
            b.plot([r["concurrency"]], [r["texts_per_s"]], "k^", label=r["client"])
    b.set_xlabel("concurrent clients")
    b.set_ylabel("texts / s")
    b.set_xscale("log", base=2)
    b.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact")
    p.add_argument("--requests", type=int, default=192)
    p.add_argument("--concurrency", default="8,32,64")
    p.add_argument("--texts-per-request", type=int, default=1)
    p.add_argument("--openai-level", type=int, default=32, help="concurrency run through the openai client (0: none)")
    p.add_argument("--server-args", default="--max-batch-size 32 --batch-wait-ms 5")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    a = p.parse_args(argv)

    from l2v.serve.process import ServerProcess, session_usage
    from l2v.serve.service import EmbeddingService, ServeConfig

    levels = [(int(c), False) for c in a.concurrency.split(",") if c.strip()]
    levels += [(a.openai_level, True)] if a.openai_level else []
    n_texts = a.requests * a.texts_per_request
    texts, source = load_texts(n_texts)
    batches = [texts[i:i + a.texts_per_request] for i in range(0, n_texts, a.texts_per_request)]
    svc = EmbeddingService(ServeConfig(str(Path(a.artifact).resolve())))
    svc.encoder.encode(texts[:8])  # warm-up
    ref = svc.encoder.encode(texts, batch_size=32)
    n_tokens = sum(it.n_tokens for it in svc.tokenize(texts))

    def inprocess_tps() -> float:
        t = time.perf_counter()
        svc.encoder.encode(texts, batch_size=32)
        return n_texts / (time.perf_counter() - t)

    rows, load_before = [], os.getloadavg()
    with ServerProcess(a.artifact, shlex.split(a.server_args)) as srv:
        start = dict(srv.ready)
        asyncio.run(run_level(srv.url, svc.name, batches[:16], 4, False))  # warm-up
        for c, use_openai in levels:
            inproc = inprocess_tps()
            with RssSampler(srv.proc.pid) as rss:
                lat, errors, wall, results = asyncio.run(run_level(srv.url, svc.name, batches, c, use_openai))
            full = len(results) == len(batches)
            got = np.concatenate([results[i] for i in sorted(results)]) if full else None
            cos = float(((got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)).min()) \
                if full else float("nan")
            row = {"client": "openai.AsyncOpenAI" if use_openai else "aiohttp", "concurrency": c,
                   "requests": len(batches), "texts_per_request": a.texts_per_request, "errors": len(errors),
                   "p50_ms": round(1000 * pct(lat, 50), 1), "p99_ms": round(1000 * pct(lat, 99), 1),
                   "texts_per_s": round(n_texts / wall, 2), "inprocess_texts_per_s": round(inproc, 2),
                   "ratio_vs_inprocess": round((n_texts / wall) / inproc, 2), "min_cos_vs_encode": cos,
                   "server_peak_rss_mib": rss.peak, "server_rss_after_mib": session_usage(srv.proc.pid)["rss_mib"],
                   "loadavg_1m": round(os.getloadavg()[0], 2)}
            if errors:
                row["error_samples"] = errors[:5]
                row["ray_log_lines"] = ray_log_lines(srv)
                print("\n".join(["errors:"] + [json.dumps(e) for e in errors[:5]] + row["ray_log_lines"]), file=sys.stderr)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("error_samples", "ray_log_lines")}), flush=True)
    summary = {"artifact": str(Path(a.artifact).resolve()), "texts_source": source, "server_args": a.server_args,
               "texts": n_texts, "tokens": n_tokens, "startup": start,
               "stop": {"exit_code": srv.exit_code, "seconds": srv.stop_seconds, "leaked_pids": srv.leaked,
                        "session_cpu_s_at_stop": srv.usage.get("cpu_s")},
               "loadavg_before": [round(x, 2) for x in load_before], "cpus": os.cpu_count(), "rows": rows}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"serve_{Path(a.artifact).resolve().name}"
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    la = round(max([r["loadavg_1m"] for r in rows] + [load_before[0]]), 1)
    md = [f"Measured UNDER LOAD (load average up to {la} on {os.cpu_count()} CPUs, shared machine): not final.", "",
          f"`{Path(a.artifact).name}`: {n_texts} texts ({n_tokens} tokens, {source}), {a.texts_per_request} per request; "
          f"server `{a.server_args}`; start-up {start['ready_s']} s (Ray {start['ray_init_s']} s); stop "
          f"{srv.stop_seconds} s, exit {srv.exit_code}, {len(srv.leaked)} processes left. In-process: "
          "`encode(batch_size=32)` on the same texts, timed just before each level.", "",
          "| client | concurrency | requests | errors | p50 ms | p99 ms | texts/s | in-process texts/s | ratio | "
          "min cos vs encode | server peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['client']} | {r['concurrency']} | {r['requests']} | {r['errors']} | {r['p50_ms']} | {r['p99_ms']} | "
           f"{r['texts_per_s']} | {r['inprocess_texts_per_s']} | {r['ratio_vs_inprocess']} | "
           f"{r['min_cos_vs_encode']:.7f} | {r['server_peak_rss_mib']} |" for r in rows]
    (out / f"{stem}.md").write_text("\n".join(md) + "\n")
    plot(rows, out / f"{stem}.png", f"l2v-serve {Path(a.artifact).name}, {a.server_args} (load avg up to {la})")
    print("\n".join(md))
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
