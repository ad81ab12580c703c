"""`compare`: the thresholds per dtype and what a failure tells the user."""
import numpy as np
import pytest

from l2v.errors import ValidationError
from l2v.export.validate import compare


def rows(noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(6, 32)).astype(np.float32)
    return ref + noise * rng.normal(size=ref.shape).astype(np.float32), ref


def test_fp16_within_its_threshold_passes_and_reports():
    got, ref = rows(1e-3)
    figures = compare(got, ref, "fp16", "model_fp16.onnx")
    assert figures["min_cosine"] >= 0.999 and figures["threshold_min_cosine"] == 0.999 and figures["rows"] == 6


def test_an_fp16_failure_points_at_16_bit_precision_not_at_a_broken_export():
    got, ref = rows(0.1)
    with pytest.raises(ValidationError, match=r"model_fp16.onnx \(fp16\) disagrees with PyTorch: min cosine") as e:
        compare(got, ref, "fp16", "model_fp16.onnx")
    assert "16-bit activations" in e.value.hint and "--dtype fp32" in e.value.hint


def test_an_fp32_failure_is_an_export_bug_to_report():
    got, ref = rows(0.1)
    with pytest.raises(ValidationError) as e:
        compare(got, ref, "fp32", "model.onnx")
    assert "the export is wrong" in e.value.hint


def test_non_finite_rows_are_refused():
    got, ref = rows(0.0)
    got[2, 3] = np.nan
    with pytest.raises(ValidationError, match="non-finite"):
        compare(got, ref, "fp32", "model.onnx")
