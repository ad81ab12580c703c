"""`-m slow`: the streamed export of a mid-size synthetic model (Llama-3 layout, 1024/3584, vocab 32k, two
LLM2Vec adapters, bf16 shards) at 2 and 6 layers, each in a fresh process measured by bench/big_export.py:
peak RSS within the issue's bound and flat in depth."""
import json
import subprocess
import sys

import pytest

from synthetic import BENCH, generator

GiB = 2 ** 30


def _export(root, layers: int) -> dict:
    ms = generator()
    model = root / f"mid-llama-L{layers}"
    cfg = ms.write_model(model, "mid-llama", layers, seed=0, shard_bytes=200_000_000)
    ms.write_adapter(root / f"{model.name}-mntp", cfg, model, seed=1, mntp=True)
    ms.write_adapter(root / f"{model.name}-supervised", cfg, model, seed=2, mntp=False)
    out = subprocess.run([sys.executable, str(BENCH / "big_export.py"), "measure", str(model), str(root / "art"),
                          "--dtype", "fp16", "--max-length", "128"], stdout=subprocess.PIPE, text=True, check=True)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["layer_fp32_bytes"] = 4 * sum(a * b for a, b in ms.projection_shapes(cfg).values())
    return rec


@pytest.mark.slow
def test_mid_size_streamed_export_peak_rss_is_bounded_and_flat_in_depth(tmp_path):
    shallow, deep = _export(tmp_path / "a", 2), _export(tmp_path / "b", 6)
    print({r["layers"]: (r["peak_rss_gib"], r["with_ort_child_gib"], r["files_gb"]) for r in (shallow, deep)})
    for rec in (shallow, deep):
        fp16_bytes = rec["files_gb"]["model_fp16.onnx.data"] * 1e9
        assert rec["validation"]["fp16"]["min_cosine"] >= 0.999
        # the bound: the whole export (main process and ORT's validation child) <= fp16 size + 2 GiB
        assert rec["peak_rss_gib"] * GiB <= fp16_bytes + 2 * GiB, rec
        assert rec["ort_validation"]["fp16"]["peak_rss_gib"] * GiB <= fp16_bytes + 2 * GiB, rec
    grew = (deep["peak_rss_gib"] - shallow["peak_rss_gib"]) * GiB
    assert grew <= deep["layer_fp32_bytes"] + 64 * 2 ** 20, (shallow["stages"], deep["stages"])
