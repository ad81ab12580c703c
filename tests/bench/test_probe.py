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
