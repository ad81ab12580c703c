"""The matmul probe's repeat policy (the GEMMs themselves run in test_run_tiny / test_st_bench)."""
import time

from l2v.bench.probe import _best_rate


def _counting(seconds_per_call: float):
    calls = []

    def fn():
        calls.append(1)
        time.sleep(seconds_per_call)
    return fn, calls


def test_a_call_slower_than_the_budget_is_timed_once_by_its_warm_up():
    fn, calls = _counting(0.05)
    rate, n = _best_rate(fn, flops=1.0, seconds=0.01)
    assert (len(calls), n) == (1, 1) and 0 < rate <= 1 / 0.05


def test_a_fast_call_gets_at_least_three_repeats_and_the_best_is_kept():
    fn, calls = _counting(0.0)
    rate, n = _best_rate(fn, flops=1.0, seconds=0.01)
    assert n >= 3 and len(calls) == n + 1 and rate > 0


def test_openvino_probe_compiles_at_the_asked_precision():
    import pytest

    pytest.importorskip("openvino")
    from l2v.bench.probe import ov_peak
    from l2v.runtime.cpu import bf16_arithmetic

    f32 = ov_peak("fp32", size=64, seconds=0.01)
    bf16 = ov_peak("bf16", size=64, seconds=0.01)
    assert f32["library"] == "openvino" and f32["ran"] == "f32" and f32["flops_per_s"] > 0 and f32["n"] >= 1
    if bf16_arithmetic():
        assert bf16["ran"] == "bf16" and bf16["flops_per_s"] > 0
    with pytest.raises(KeyError):
        ov_peak("int4", size=64)
