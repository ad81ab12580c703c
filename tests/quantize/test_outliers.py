"""The LLM.int8()-style outlier decomposition of the per-token W8A8 graph (w8a8.per_token_int8)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from l2v.quantize.w8a8 import per_token_int8  # noqa: E402

K, N = 64, 48


def _one_matmul(w: np.ndarray):
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", K])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", N])
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")
    g = helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(w, "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, x):
    onnx.checker.check_model(model)
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def _sqnr_db(ref, got):
    return 10 * np.log10((ref ** 2).sum() / ((ref - got) ** 2).sum())


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(K, N)).astype(np.float32)
    x = rng.normal(size=(2, 7, K)).astype(np.float32)
    x[..., [3, 41]] *= 80.0  # two outlier channels, as LLM activations have
    return w, x, x @ w


def test_outlier_channels_rescue_the_int8_path(data):
    w, x, ref = data
    plain = _run(per_token_int8(_one_matmul(w)), x)
    split = _run(per_token_int8(_one_matmul(w), outliers={"x": np.array([3, 41])}), x)
    assert _sqnr_db(ref, split) > _sqnr_db(ref, plain) + 15  # measured 64 dB vs 36 dB


def test_all_channels_as_outliers_is_exact_fp32(data):
    w, x, ref = data
    got = _run(per_token_int8(_one_matmul(w), outliers={"x": np.arange(K)}), x)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


def test_outlier_graph_has_the_fp32_side_path(data):
    w, _, _ = data
    model = per_token_int8(_one_matmul(w), outliers={"x": np.array([3, 41])})
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulInteger") == 1 and ops.count("MatMul") == 1 and ops.count("Gather") == 1
    side = {i.name: i for i in model.graph.initializer}["w_l2v_wo"]
    assert list(side.dims) == [2, N]
