"""The compiled (non-interpreter) kernel lowers to a cubin for real GPU targets, checked without a GPU:
triton ships ptxas, and `triton.compile` accepts a target. Catches type / layout / lowering errors the
interpreter cannot see. Default run: one config for sm80; `-m slow`: every autotune config, sm80 + sm90."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SMEM_LIMIT = {80: 166912, 90: 232448}  # max dynamic shared memory per block: A100, H100


def run_jobs(jobs, timeout=1200):
    pytest.importorskip("triton", reason="triton is not installed: pip install 'l2v-export[gpu]'")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(HERE / "aot_compile.py"), json.dumps(jobs)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if len(results) != len(jobs):
        pytest.fail(f"aot compile crashed (rc={proc.returncode}): {proc.stderr[-2000:]}")
    return results


def test_compiles_for_sm80():
    (res,) = run_jobs([["bf16", 128, 128, 64, 4, 3, False, 80]])
    assert res["ok"], res.get("error")
    assert res["mma"] and res["shared"] <= SMEM_LIMIT[80]


@pytest.mark.slow
def test_every_autotune_config_compiles():
    from l2v.kernels import flash_attn as fa

    jobs = []
    for cap in (80, 90):
        for hd in (64, 128, 256):
            for c in fa._prune_configs(fa._gpu_configs(), {"HEAD_DIM": hd, "SEQ_BUCKET": 4096}):
                jobs.append(["bf16", hd, c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages,
                             False, cap])
        jobs += [["fp16", 128, 128, 64, 4, 3, True, cap], ["fp32", 64, 64, 64, 4, 2, False, cap]]
    results = run_jobs(jobs)
    bad = [r for r in results if not r["ok"]]
    assert not bad, bad
    for cap in (80, 90):
        for hd in (64, 128, 256):
            fits = [r for r in results if r["job"][7] == cap and r["job"][1] == hd and r["shared"] <= SMEM_LIMIT[cap]]
            assert fits, f"no config fits sm{cap} shared memory for head_dim {hd}"


def test_autotune_pruning(fa):
    for hd in (16, 32, 64, 128, 256):
        for bucket in (16, 128, 512, 4096):
            kept = fa._prune_configs(fa._gpu_configs(), {"HEAD_DIM": hd, "SEQ_BUCKET": bucket})
            assert kept
            assert all(c.kwargs["BLOCK_M"] <= max(64, bucket) for c in kept)
            if hd == 256:
                assert all(c.kwargs["BLOCK_N"] <= 64 and c.num_stages <= 2 for c in kept)
