"""Run an ONNX graph on batches in a child process, so its memory is its own and measured.

    outputs, report = run_in_child(path, batches, output, workdir)

Why a child: ONNX Runtime's memory must neither add to the exporter's nor outlive the check; the child's
peak RSS (VmHWM) is reported, and a child killed for memory is a clear error, not a dead export. The
child's session is a low-memory one (l2v.runtime.onnx.low_memory_options: no graph optimizations,
priority-based order, no CPU arena): the fp16 weights stay memory-mapped instead of being folded into
fp32 copies (8B width, 4 layers: peak 3.56 -> 2.40 GiB, anonymous after the run 3.47 -> 0.09 GiB,
bench/results/ort_memory.md).
The child dies with its parent (PR_SET_PDEATHSIG), so an interrupted export leaves no ORT process behind.

The graph runs a chunk of its weights at a time (l2v.runtime.onnx_chunks, `chunk_bytes`; the whole graph
is opened once first, to show that it loads): the child's RSS is then one chunk's mapped weights plus the
activations, flat in depth, where a whole-graph run maps every weight (8B fp16: 13.97 GiB).

Child: `python -m l2v.runtime.onnx_child GRAPH BATCHES.npz OUT.npy OUTPUT [--providers P,...] [--chunk-bytes N]`
prints one JSON line: the session kind, the chunks, open/run seconds, RSS (anonymous / file-backed) after
opening and after the run, and the peak; with `timing=(batch1, batch32)` also `speed`: median ms per call
of each on the whole graph (l2v.runtime.timing.speed), which maps every weight.
Users: export validation of streamed graphs (l2v.export.validate) and the recall gate of streamed artifacts
(l2v.quantize.gate), so an 8B graph's mapped weights never add to the exporting process's memory.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from l2v.errors import L2VError

NAMES = ("input_ids", "attention_mask", "pooling_mask")


class ChildError(L2VError):
    """The ONNX Runtime child failed: `killed` is True when a signal (the OOM killer) ended it."""

    def __init__(self, message: str, killed: bool = False, hint: str | None = None):
        super().__init__(message, hint)
        self.killed = killed



def as_typed_error(e: ChildError, prefix: str = "") -> L2VError:
    """What a caller raises for a failed child: killed (the OOM killer) -> ResourceError with the child's hint;
    any other failure -> ValidationError (the graph did not run)."""
    from l2v.errors import ResourceError, ValidationError

    if e.killed:
        return ResourceError(str(e), hint=e.hint)
    return ValidationError(f"{prefix}{e}")

TIMED = ("t1", "t32")  # npz prefixes of the optional timing batches
CHUNK_BYTES = 512 << 20  # weights mapped at a time (an 8B decoder layer is 0.41 GiB in fp16)


def save_batches(batches, path: Path, timing=None) -> None:
    arrays = {f"{k}_{i}": np.asarray(b[k]) for i, b in enumerate(batches) for k in NAMES}
    for prefix, b in zip(TIMED, timing or ()):
        arrays.update({f"{prefix}_{k}": np.asarray(b[k]) for k in NAMES})
    np.savez(path, **arrays)


def load_batches(path) -> tuple[list[dict], tuple | None]:
    """(batches, (batch1, batch32) to time or None)."""
    data = np.load(path)
    n = len([k for k in data.files if k.startswith("input_ids_")])
    timing = tuple({k: data[f"{p}_{k}"] for k in NAMES} for p in TIMED) if "t1_input_ids" in data.files else None
    return [{k: data[f"{k}_{i}"] for k in NAMES} for i in range(n)], timing


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (an interrupted export leaves no ORT child)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_in_child(path, batches, output: str, workdir, providers=None, timeout_s: float | None = None,
                 timing: tuple | None = None, chunk_bytes: int | None = None):
    """(outputs float32 [rows, dim], the child's report). Raises `ChildError` naming the child's error.
    `timing`: (batch1, batch32) dicts the child also times after the run, on the whole graph (report["speed"]).
    `chunk_bytes`: run the graph a chunk of at most this many bytes of weights at a time
    (l2v.runtime.onnx_chunks; the whole graph is still opened once, to show it loads); None: CHUNK_BYTES;
    0: the whole graph at once."""
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    with tempfile.TemporaryDirectory(prefix=".l2v-ort-", dir=workdir) as tmp:
        bpath, opath = Path(tmp) / "batches.npz", Path(tmp) / "out.npy"
        save_batches(batches, bpath, timing)
        cmd = [sys.executable, "-m", "l2v.runtime.onnx_child", str(path), str(bpath), str(opath), output]
        if providers:
            cmd += ["--providers", ",".join(providers)]
        if chunk_bytes:
            cmd += ["--chunk-bytes", str(int(chunk_bytes))]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_die_with_parent)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except BaseException:  # Ctrl-C, SIGTERM, timeout: the child goes with us
            proc.kill()
            proc.wait()
            raise
        name = Path(path).name
        if proc.returncode < 0:
            raise ChildError(f"ONNX Runtime was killed by signal {-proc.returncode} while running {name} "
                             "(out of memory?)", killed=True,
                             hint="lower --max-memory-gb only if it is above what the machine really has, "
                                  "or free memory")
        lines = out.strip().splitlines()
        if proc.returncode != 0 or not lines:
            last = (err.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            raise ChildError(f"ONNX Runtime could not run {name}: {last[:300]}")
        return np.load(opath), json.loads(lines[-1])


def main(argv=None) -> int:
    import argparse

    from l2v.resources import GiB, process_memory
    from l2v.runtime.onnx import session

    ap = argparse.ArgumentParser()
    ap.add_argument("graph")
    ap.add_argument("batches")
    ap.add_argument("out")
    ap.add_argument("output")
    ap.add_argument("--providers", default="CPUExecutionProvider")
    ap.add_argument("--chunk-bytes", type=int, default=0)
    args = ap.parse_args(argv)

    def mem() -> dict:
        return {k: round(v / GiB, 3) for k, v in process_memory().items()}

    report = {"session": "low-memory", "after_import_gib": mem()}
    providers = args.providers.split(",")
    t = time.perf_counter()
    try:
        # chunked, the whole graph opens only to show that it loads: no pre-packed copies of its weights
        sess = session(args.graph, providers=providers, spinning=False, low_memory=True,
                       prepack=not args.chunk_bytes)
        report["open_s"] = round(time.perf_counter() - t, 2)
        report["after_open_gib"] = mem()
        batches, timing = load_batches(args.batches)
        t = time.perf_counter()
        if args.chunk_bytes:  # the whole graph opened (it loads); it runs a chunk of weights at a time
            from l2v.runtime.onnx_chunks import run_chunked

            del sess
            chunks = []
            outs = run_chunked(args.graph, batches, args.output, args.chunk_bytes, providers,
                               on_chunk=lambda k, n: chunks.append(n))
            report["chunks"] = {"count": chunks[-1], "max_weight_bytes": args.chunk_bytes}
        else:
            outs = [sess.run([args.output], b)[0] for b in batches]
        report["run_s"] = round(time.perf_counter() - t, 2)
        report["after_run_gib"] = mem()
        report["peak_run_gib"] = report["after_run_gib"].get("peak")
        if timing:
            from l2v.runtime.timing import speed

            if args.chunk_bytes:
                sess = session(args.graph, providers=providers, spinning=False, low_memory=True)

            class _Run:
                def run(self, b):
                    return sess.run([args.output], b)

            report["speed"] = speed({"graph": _Run()}, *timing, min_seconds=1.0, max_reps=5)["graph"]
    except Exception as e:  # ORT's own exception types: reported as one line to the parent
        print(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}", file=sys.stderr)
        return 1
    report["peak_rss_gib"] = mem().get("peak")
    np.save(args.out, np.concatenate(outs).astype(np.float32))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
