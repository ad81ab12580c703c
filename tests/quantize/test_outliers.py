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
    assert ops.count("MatMulIntegerToFloat") == 1 and ops.count("MatMul") == 1 and ops.count("Gather") == 1
    side = {i.name: i for i in model.graph.initializer}["w_l2v_wo"]
    assert list(side.dims) == [2, N]


@pytest.mark.parametrize("outliers", [None, {"x": np.array([3, 41])}])
def test_fused_graph_form_equals_the_standard_ops(data, outliers):
    """One QuantizeLinear + MatMulIntegerToFloat computes what Div/Round/Cast + MatMulInteger/Cast/Mul do."""
    w, x, ref = data
    fused = per_token_int8(_one_matmul(w), outliers=outliers)
    plain = per_token_int8(_one_matmul(w), outliers=outliers, fused=False)
    a, b = _run(fused, x), _run(plain, x)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    assert _sqnr_db(ref, a) > 15  # (22 dB with the two outlier channels in int8, 64 dB without)
    ops_f = [n.op_type for n in fused.graph.node]
    ops_p = [n.op_type for n in plain.graph.node]
    assert "MatMulInteger" not in ops_f and ops_f.count("QuantizeLinear") == 1 and "Round" not in ops_f
    assert "MatMulIntegerToFloat" not in ops_p and ops_p.count("MatMulInteger") == 1
    assert all(o.domain in ("", "ai.onnx") for o in plain.opset_import)  # standard ONNX only


def test_fused_form_shares_one_quantization_per_input(data):
    """Two projections reading one tensor (q/k/v-like) quantize it once."""
    from onnx import TensorProto, helper, numpy_helper

    w, x, _ = data
    y = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "s", N]) for n in ("y1", "y2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["y1"], name="p1"),
             helper.make_node("MatMul", ["x", "w2"], ["y2"], name="p2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", K])], y,
                          [numpy_helper.from_array(w, "w1"), numpy_helper.from_array(-w[:, ::-1].copy(), "w2")])
    model = per_token_int8(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") == 1 and ops.count("MatMulIntegerToFloat") == 2
    onnx.checker.check_model(model)
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y1, y2 = s.run(None, {"x": x})
    assert _sqnr_db(x @ w, y1) > 15 and _sqnr_db(x @ -w[:, ::-1], y2) > 15


def test_reduce_range_weights_are_exact_in_the_integer_kernel(data):
    """7-bit weights: ORT's u8 x s8 GEMM equals the exact integer arithmetic on every x86 CPU (with 8-bit
    weights, CPUs without VNNI saturate pairs of products in int16: bench/u8s8_saturation.py)."""
    w, _, _ = data
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, K)).astype(np.float32)  # no outliers: large x_q everywhere
    model = per_token_int8(_one_matmul(w), reduce_range=True)
    wq = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}["w_l2v_q"]
    ws = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}["w_l2v_s"]
    assert np.abs(wq).max() <= 63
    sx = np.maximum(np.abs(x).max(-1, keepdims=True), 1e-8) / 127.0
    exact = (np.round(x / sx) @ wq.astype(np.float64)) * sx * ws
    np.testing.assert_allclose(_run(model, x), exact, rtol=1e-5, atol=1e-5 * np.abs(exact).max())
