"""The quantization primitives: numpy and torch give the same numbers, the block and per-row forms match
the formulas the kernels use, and the patching helpers always restore."""
import numpy as np
import pytest

from l2v import numerics as N

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("fn", [
    lambda x: N.fake_quant(x, axis=-1),
    lambda x: N.fake_quant(x, axis=0, qmax=63.0),
    lambda x: N.fake_quant_per_block(x, 32, axis=-1),
    lambda x: N.fake_quant_blocks(x, 32, 4, axis=0),
    lambda x: N.fake_quant_blocks(x, 16, 8, axis=1, symmetric=False),
])
def test_numpy_and_torch_agree(fn):
    x = np.random.default_rng(0).normal(size=(70, 96)).astype(np.float32)
    a, b = fn(x), fn(torch.from_numpy(x)).numpy()
    assert a.shape == x.shape and np.abs(a - b).max() <= 1e-6


def test_per_row_int8_is_symmetric_absmax():
    x = np.random.default_rng(1).normal(size=(5, 40)).astype(np.float32)
    s = N.absmax_scale(x, axis=-1)
    q = N.quantize(x, s)
    assert np.allclose(s[:, 0], np.abs(x).max(1) / 127.0)
    assert q.min() >= -127 and q.max() <= 127 and (np.abs(q).max(1) == 127).all()
    assert np.abs(N.fake_quant(x) - x).max() <= s.max() / 2 + 1e-7


def test_blocks_of_4_bits_use_16_codes_and_pad_odd_lengths():
    w = np.random.default_rng(2).normal(size=(70, 8)).astype(np.float32)  # 70 = 2 blocks of 32 + 6
    fq = N.fake_quant_blocks(w, 32, 4, axis=0)
    assert fq.shape == w.shape
    for lo, hi in ((0, 32), (32, 64), (64, 70)):
        blk, col = w[lo:hi], fq[lo:hi]
        scale = np.abs(blk).max(0) / 8.0
        codes = np.round(col / scale)
        assert codes.min() >= -8 and codes.max() <= 7


def test_smoothquant_scales_move_range_and_keep_products():
    act = np.array([100.0, 1.0, 0.01], dtype=np.float32)
    w = np.array([0.1, 1.0, 1.0], dtype=np.float32)
    s = N.smoothquant_scales(act, w, 0.5)
    assert np.allclose(s, np.clip(np.sqrt(np.maximum(act, 1e-5)) / np.sqrt(np.maximum(w, 1e-5)), 1e-4, 1e4))
    t = N.smoothquant_scales(torch.from_numpy(act), torch.from_numpy(w), 0.5).numpy()
    assert np.allclose(s, t)


def test_replaced_forward_restores_on_error():
    lin = torch.nn.Linear(4, 4)
    x = torch.ones(1, 4)
    want = lin(x)
    with pytest.raises(RuntimeError):
        with N.replaced_forward({lin: lambda x: x * 0}):
            assert (lin(x) == 0).all()
            raise RuntimeError("boom")
    assert "forward" not in lin.__dict__ and torch.equal(lin(x), want)


def test_capture_inputs_removes_its_hooks_on_error():
    lin = torch.nn.Linear(4, 4)
    seen = []
    with pytest.raises(RuntimeError):
        with N.capture_inputs({"lin": lin}, lambda n, x: seen.append((n, tuple(x.shape)))):
            lin(torch.ones(2, 4))
            raise RuntimeError("boom")
    lin(torch.ones(3, 4))
    assert seen == [("lin", (2, 4))] and not lin._forward_hooks
