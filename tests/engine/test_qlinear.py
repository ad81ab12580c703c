"""Quantized GEMMs on CPU: cosine vs the fp32 linear, CPU `_scaled_mm` / `_int_mm` agree with the
emulated numerics, SmoothQuant, and the engine swap. GPU speed is measured by bench/gpu_engine.py."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from engine_tiny_models import random_seqs, tiny_model

from l2v.engine.packed import PackedEncoder
from l2v.engine.qlinear import (QuantLinear, fp8_matmul, int8_matmul, quantize_per_row, require_fp8_capability,
                                smoothquant_scales)
from l2v.engine.quantize import collect_act_amax, quantize_linears
from l2v.errors import InputError

MIN_COS = {"fp8": 0.999, "int8": 0.999, "bf16": 0.99999}


@pytest.fixture(scope="module")
def lin_and_x():
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 512)
    x = torch.randn(64, 256)
    x[:, 3] *= 30  # an outlier channel, as in LLM activations
    return lin, x


def row_cos(a, b):
    return F.cosine_similarity(a.float(), b.float(), dim=-1).min().item()


@pytest.mark.parametrize("mode", ["fp8", "int8", "bf16"])
def test_cosine_vs_fp32(lin_and_x, mode):
    lin, x = lin_and_x
    q = QuantLinear(lin, mode)
    y = q(x.view(4, 16, 256))  # leading dims kept
    assert y.shape == (4, 16, 512) and y.dtype == torch.float32
    assert row_cos(y.view(64, 512), lin(x)) >= MIN_COS[mode]


@pytest.mark.parametrize("mode", ["fp8", "int8"])
def test_smoothquant(lin_and_x, mode):
    lin, x = lin_and_x
    s = smoothquant_scales(x.abs().amax(0), lin.weight, alpha=0.5)
    assert row_cos(QuantLinear(lin, mode, smooth=s)(x), lin(x)) >= 0.999
    ones = QuantLinear(lin, mode, smooth=torch.ones(256))(x)
    torch.testing.assert_close(ones, QuantLinear(lin, mode)(x))


def test_int8_int_mm_is_exact_integer_gemm():
    xq = torch.randint(-127, 128, (5, 64), dtype=torch.int8)  # 5 rows: CUDA would need padding
    wq = torch.randint(-127, 128, (24, 64), dtype=torch.int8)
    one = torch.ones(5, 1), torch.ones(24, 1)
    got = int8_matmul(xq, wq, *one, torch.float32)
    torch.testing.assert_close(got, (xq.long() @ wq.long().t()).float())


def test_fp8_scaled_mm_matches_emulation(lin_and_x):
    lin, x = lin_and_x
    xq, xs = quantize_per_row(x, "fp8")
    wq, ws = quantize_per_row(lin.weight, "fp8")
    emulated = fp8_matmul(xq, wq, xs, ws, torch.float32, use_scaled_mm=False)
    try:
        real = fp8_matmul(xq, wq, xs, ws, torch.float32, use_scaled_mm=True)
    except (RuntimeError, NotImplementedError) as exc:  # older CPU torch: no _scaled_mm kernel
        pytest.skip(f"torch._scaled_mm unavailable on CPU here: {exc}")
    torch.testing.assert_close(real, emulated, rtol=1 / 128, atol=1e-3)  # bf16 output rounding


def test_fp8_capability_and_errors(lin_and_x):
    lin, _ = lin_and_x
    require_fp8_capability((8, 9))
    require_fp8_capability((9, 0))
    with pytest.raises(ValueError, match="sm80"):
        require_fp8_capability((8, 0))
    with pytest.raises(InputError, match="unknown quantization mode"):
        QuantLinear(lin, "int4")
    with pytest.raises(InputError, match="256 positive"):
        QuantLinear(lin, "int8", smooth=torch.ones(3))
    with pytest.raises(InputError, match="only applies"):
        QuantLinear(lin, "bf16", smooth=torch.ones(256))


@pytest.mark.parametrize("mode", ["fp8", "int8", "bf16"])
def test_quantized_engine_embeddings(mode):
    model = tiny_model("llama", initializer_range=0.02)
    seqs = random_seqs([12, 5, 30, 1], seed=2)
    ref = PackedEncoder(model, pooling="mean")(seqs)
    enc = quantize_linears(PackedEncoder(model, pooling="mean"), mode)
    assert isinstance(enc.layers[0].q_proj, QuantLinear)
    assert isinstance(model.layers[0].self_attn.q_proj, torch.nn.Linear)  # HF model untouched
    assert row_cos(enc(seqs), ref) >= 0.995
    with pytest.raises(InputError, match="already quantized"):
        quantize_linears(enc, mode)


def test_smoothquant_engine_calibration():
    model = tiny_model("qwen2", initializer_range=0.02)
    seqs = random_seqs([12, 5, 30], seed=4)
    enc = PackedEncoder(model, pooling="mean")
    ref = enc(seqs)
    stats = collect_act_amax(enc, [seqs])
    assert set(stats) == {f"layers.{i}.{n}" for i in range(2) for n in
                          ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")}
    assert stats["layers.0.q_proj"].shape == (64,)
    quantize_linears(enc, "int8", act_amax=stats)
    assert enc.layers[0].q_proj.inv_smooth is not None
    assert row_cos(enc(seqs), ref) >= 0.995


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["fp8", "int8", "bf16"])
def test_gpu_quant_linear(mode):
    if mode == "fp8" and torch.cuda.get_device_capability() < (8, 9):
        with pytest.raises(InputError, match="sm89"):
            QuantLinear(torch.nn.Linear(256, 512).cuda(), mode)
        return
    torch.manual_seed(0)
    lin = torch.nn.Linear(4096, 1024).cuda()
    x = torch.randn(3, 4096, device="cuda", dtype=torch.bfloat16)  # 3 rows: int8 path pads to 17
    y = QuantLinear(lin, mode)(x)
    assert y.dtype == torch.bfloat16 and row_cos(y, lin(x.float())) >= 0.995
