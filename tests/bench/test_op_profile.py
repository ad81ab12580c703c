"""bench/op_profile.py on the shared tiny llama artifact: per-op-type times come from real ORT / OpenVINO
profiles of real calls (CPU, seconds); no timing is asserted, only that the profile accounts for the call."""
import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import op_profile  # noqa: E402


def test_ort_profile_covers_the_graphs_ops(tiny_llama_artifact):
    from l2v.artifact import open_artifact

    art = open_artifact(tiny_llama_artifact)
    r = op_profile.profile_engine(art, "ort/fp32", op_profile.full_batch(art, 2, 16), calls=2, threads=1)
    assert "MatMul" in r["ops"] or "FusedMatMul" in r["ops"]
    assert r["int8_ops"] == [] and abs(sum(r["share"].values()) - 1) < 1e-3
    assert 0 < r["node_ms"] and 0 < r["wall_ms"]


def test_unknown_variant_and_backend_are_rows_not_crashes(tiny_llama_artifact):
    from l2v.artifact import open_artifact

    art = open_artifact(tiny_llama_artifact)
    batch = op_profile.full_batch(art, 1, 8)
    assert "no variant 'nope'" in op_profile.profile_engine(art, "ort/nope", batch, 1, 1)["error"]
    assert "unknown backend 'trt'" in op_profile.profile_engine(art, "trt/fp32", batch, 1, 1)["error"]


def test_report_files(tiny_llama_artifact, tmp_path):
    import shutil

    art, engines = tmp_path / "art", "ort/fp32"
    shutil.copytree(tiny_llama_artifact, art)  # the shared artifact stays as the other tests expect it
    if importlib.util.find_spec("openvino") and importlib.util.find_spec("nncf"):
        from l2v.quantize import quantize_artifact

        quantize_artifact(art, ["ov-fp32"], speed=False)
        engines += ",ov/ov-fp32"
    assert op_profile.main([str(art), "--engines", engines, "--batch", "2", "--max-tokens", "16",
                            "--calls", "1", "--threads", "1", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "op_profile.md").read_text()
    assert "| **wall per call** |" in md and (tmp_path / "op_profile.png").stat().st_size > 0
    if "ov/ov-fp32" in engines:
        import json

        ov = json.loads((tmp_path / "op_profile.json").read_text())["engines"]["ov/ov-fp32"]
        assert ov["ops"] and "FullyConnected" in " ".join(ov["ops"])


@pytest.mark.parametrize("bad", ["ort", "ort/"])
def test_engine_needs_a_backend_and_variant(tiny_llama_artifact, bad):
    from l2v.artifact import open_artifact

    art = open_artifact(tiny_llama_artifact)
    with pytest.raises(ValueError, match="BACKEND/VARIANT"):
        op_profile.profile_engine(art, bad, op_profile.full_batch(art, 1, 8), 1, 1)
