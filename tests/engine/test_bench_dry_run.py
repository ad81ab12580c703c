"""bench/gpu_engine.py: the CPU dry run exercises every code path; without CUDA the real run refuses."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_engine.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_engine_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dry_run_writes_json_and_markdown(bench, tmp_path):
    assert bench.main(["--out", str(tmp_path), "--dry-run"]) == 0
    report = json.loads((tmp_path / "gpu_engine.json").read_text())
    md = (tmp_path / "gpu_engine.md").read_text()
    assert report["peak_tflops"] > 0 and "dry run" in md
    for key in ("llama3-8b[tiny]", "smollm2-135m[tiny]"):
        variants = report["e2e"][key]["variants"]
        assert set(variants) == {"hf_sdpa_padded", "packed_bf16", "packed_fp8", "packed_int8"}
        assert all("tokens_per_s" in v for v in variants.values()), variants
        assert variants["hf_sdpa_padded"]["cosine_vs_packed_bf16"] > 0.9999  # same vectors as HF
        assert variants["packed_int8"]["cosine_vs_packed_bf16"] > 0.99
    if "rows" in report["kernel"]:
        assert [r["L"] for r in report["kernel"]["rows"]] == [32, 64]
    assert any("packed bf16 / HF padded" in c["what"] for c in report["target_checks"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_refuses_without_cuda(bench, tmp_path, capsys):
    assert bench.main(["--out", str(tmp_path)]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
