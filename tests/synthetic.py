"""Synthetic checkpoints for tests: bench/make_synthetic.py (the deterministic generator) at tiny shapes."""
from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def generator():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import make_synthetic

    return make_synthetic


def make_synth(root: Path, shapes=("tiny-llama", "tiny-qwen2"), layers: int = 2) -> dict:
    ms = generator()
    out = {}
    for shape in shapes:
        d = root / shape
        cfg = ms.write_model(d, shape, layers, seed=0, shard_bytes=100_000)
        ms.write_adapter(root / f"{shape}-mntp", cfg, d, seed=1, mntp=True)
        ms.write_adapter(root / f"{shape}-supervised", cfg, d, seed=2, mntp=False)
        out[shape] = (d, [root / f"{shape}-mntp", root / f"{shape}-supervised"])
    return out
