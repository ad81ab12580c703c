"""Percentile math and the repeat loop (with a fake clock: no timing is asserted)."""
import numpy as np
import pytest

from l2v.bench.stats import TimingPolicy, measure, percentile, summarize
from l2v.errors import InputError


def test_percentiles_match_linear_interpolation():
    xs = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(xs, 50) == 3.0
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 5.0
    assert percentile(xs, 95) == pytest.approx(4.8)  # rank 3.8 between 4 and 5
    rng = np.random.default_rng(0)
    ys = rng.standard_normal(101).tolist()
    for q in (50, 95, 99):
        assert percentile(ys, q) == pytest.approx(np.percentile(ys, q))
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(InputError):
        percentile([], 50)


def test_summarize():
    s = summarize([0.1, 0.2, 0.3, 0.4])
    assert s["n"] == 4 and s["p50"] == pytest.approx(0.25) and s["mean"] == pytest.approx(0.25)


class FakeClock:
    def __init__(self, step):
        self.t, self.step, self.calls = 0.0, step, 0

    def __call__(self):
        return self.t

    def work(self):
        self.calls += 1
        self.t += self.step


def test_measure_excludes_warmup_and_stops_on_count_or_time():
    c = FakeClock(0.01)
    samples = measure(c.work, TimingPolicy(warmup=2, min_repeats=10, min_seconds=0.05, max_seconds=5), clock=c)
    assert c.calls == 12 and len(samples) == 10  # 10 repeats reach 0.1 s >= min_seconds
    slow = FakeClock(2.0)
    samples = measure(slow.work, TimingPolicy(warmup=1, floor_repeats=3, min_repeats=10, max_seconds=5), clock=slow)
    assert len(samples) == 3 and slow.calls == 4  # the time cap never cuts below the floor
    many = FakeClock(0.0)
    assert len(measure(many.work, TimingPolicy(max_repeats=7, min_seconds=1.0), clock=many)) == 7


def test_interleaved_rounds_rotate_and_each_function_stops_on_its_own():
    from l2v.bench.stats import measure_interleaved

    calls = []
    clock = FakeClock(0.0)

    def make(name, step):
        def fn():
            calls.append(name)
            clock.t += step
        return fn

    policy = TimingPolicy(warmup=1, floor_repeats=2, min_repeats=3, max_repeats=50, min_seconds=0.0, max_seconds=1.0)
    a, b = measure_interleaved([make("a", 0.01), make("b", 0.6)], policy, clock=clock)
    assert calls[:2] == ["a", "b"]  # warm-up
    assert calls[2:6] == ["a", "b", "b", "a"]  # the first caller rotates each round
    assert len(b) == 2 and len(a) == 3  # b hit max_seconds after its floor; a stopped at min_repeats
