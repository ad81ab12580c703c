"""MatMulNBits at accuracy_level 4 is W8A8, not weight-only: ORT quantises the activations to int8 per
row and block of `block_size` input channels (scale = max|a| / 127) and multiplies on the int8 kernels.

This is what lets the docs count `w8` (and `int8-smooth:kernel=nbits`) as an int8 variant; `w4` at
level 4 is int4 weights x int8 activations the same way. The test
rebuilds both candidate results in numpy and requires ORT's output to be the int8 one, not the
fp32-activation one (accuracy_level 0 must be the fp32-activation one).
"""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from l2v.quantize.onnx_methods import nbits_quantize  # noqa: E402

K, N, BLOCK = 256, 64, 32


def _model(w):
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", K])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", N])
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")
    g = helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(w, "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, x):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def _int8_rows_per_block(x):
    """The arithmetic the layer ranking uses for this kernel (l2v.numerics): checked against ORT here."""
    from l2v.numerics import fake_quant_per_block

    return fake_quant_per_block(x, BLOCK, axis=-1)


@pytest.fixture(scope="module", params=[8, 4], ids=["w8", "w4"])
def case(request):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(K, N)).astype(np.float32)
    x = rng.normal(size=(16, K)).astype(np.float32)
    x[:, 5] *= 40.0  # one outlier channel: block-wise scales confine its damage to one block
    # the stored weights exactly as ORT dequantises them: level 0 applied to the identity
    wq = _run(nbits_quantize(_model(w), request.param, BLOCK, True, 0), np.eye(K, dtype=np.float32))
    wq = wq.astype(np.float64)
    return request.param, w, x, x.astype(np.float64) @ wq, _int8_rows_per_block(x.astype(np.float64)) @ wq


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_accuracy_level_4_quantises_activations_per_block(case):
    bits, w, x, fp32_act, int8_act = case
    got = _run(nbits_quantize(_model(w), bits, BLOCK, True, 4), x)
    if _rel(got, fp32_act) < 1e-5:
        pytest.skip("this CPU's ORT build has no int8 MatMulNBits kernel (it computed in fp32)")
    assert _rel(got, int8_act) < 1e-4, "ORT's int8 path differs from int8 per row and block"
    assert _rel(got, fp32_act) > 10 * _rel(got, int8_act)


def test_accuracy_level_0_keeps_fp32_activations(case):
    bits, w, x, fp32_act, _ = case
    got = _run(nbits_quantize(_model(w), bits, BLOCK, True, 0), x)
    assert _rel(got, fp32_act) < 1e-5
