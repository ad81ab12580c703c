import pytest

from l2v.bench.config import BenchConfig, parse_backends, parse_int_list
from l2v.bench.speed import grid_cells
from l2v.errors import InputError


def test_parse_lists():
    assert parse_int_list("32, 1,8,8", "--batch-sizes") == (1, 8, 32)
    for bad in ("", "0,1", "a"):
        with pytest.raises(InputError):
            parse_int_list(bad, "--seq-lens")
    assert parse_backends("ort,torch,ort") == ("ort", "torch")


def test_quick_defaults_and_checks():
    q = BenchConfig.quick_defaults(targets=["x"], batch_sizes=None)
    assert q.quick and q.batch_sizes == (1, 4)
    with pytest.raises(InputError):
        BenchConfig(targets=[]).check()
    with pytest.raises(InputError):
        BenchConfig(targets=["x"], device="tpu").check()


def test_grid_runs_cheapest_first():
    assert grid_cells((1, 8), (128, 32)) == [(1, 32), (1, 128), (8, 32), (8, 128)]
