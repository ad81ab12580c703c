"""Peak memory of one backend, measured alone in a fresh process (nothing else loaded, nothing left over
from other backends): load it, run one forward of batch x seq, report RSS (and CUDA) peaks as JSON.

    python -m l2v.bench.memprobe ROOT BACKEND VARIANT --batch B --seq S [--device D] [--threads T]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from l2v.errors import L2VError


def probe_in_subprocess(root: Path, backend: str, variant: str, batch: int, seq: int, device: str,
                        threads: int | None, timeout_s: float = 900) -> dict:
    """The child's JSON result; raises `L2VError` with the child's last stderr line if it failed."""
    cmd = [sys.executable, "-m", "l2v.bench.memprobe", str(root), backend, variant, "--batch", str(batch),
           "--seq", str(seq), "--device", device] + (["--threads", str(threads)] if threads else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise L2VError(f"memory probe of {backend}/{variant} took over {timeout_s:.0f} s") from e
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise L2VError(f"memory probe of {backend}/{variant} failed: {last[:200]}")
    return json.loads(lines[-1])


def _open(artifact, backend: str, variant: str, device: str, threads):
    from l2v.bench import runners

    if backend == "hf":
        return runners.open_hf(artifact, device)
    if backend in ("torch", "packed"):
        return runners.open_l2v_torch(artifact, device, "padded" if backend == "torch" else "packed")
    if backend == "trt":
        return runners.open_trt(artifact, threads) if variant == "fp32" else runners.open_trt_engine(artifact, variant)
    return runners.open_ort(artifact, variant, device, threads, label=backend if backend == "ov" else "ort")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m l2v.bench.memprobe")
    p.add_argument("root")
    p.add_argument("backend")
    p.add_argument("variant")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)

    from l2v.bench import memory
    from l2v.bench.speed import synthetic_arrays
    from l2v.artifact import open_artifact

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    artifact = open_artifact(Path(args.root))
    start = memory.rss_mb()
    reset_ok = memory.reset_peak_rss()
    runner = _open(artifact, args.backend, args.variant, args.device, args.threads)
    loaded = memory.rss_mb()
    vocab = len(artifact.tokenizer)
    runner.run(synthetic_arrays(args.batch, args.seq, vocab))
    out = {"rss_start_mb": start, "rss_loaded_mb": loaded, "peak_rss_mb": memory.peak_rss_mb(),
           "peak_scope": "since start" if reset_ok else "process lifetime"}
    if args.device.startswith("cuda") and args.backend in ("hf", "torch", "packed"):
        out["cuda_peak_mb"] = memory.cuda_peak_mb(args.device)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except L2VError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
