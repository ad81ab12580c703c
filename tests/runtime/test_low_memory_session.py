"""The validation child's low-memory ONNX Runtime session (l2v.runtime.onnx.low_memory_options): what it
relies on, pinned on a tiny fp16 graph with page-aligned external data, as the streamed export writes it."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from l2v.errors import InputError
from l2v.runtime.backend import RunOptions
from l2v.runtime.onnx import OnnxBackend, low_memory_options, needs_low_memory, session

ort = pytest.importorskip("onnxruntime")


def _fp16_graph(path, d: int = 256):
    """x [n, d] fp32 -> Cast fp16 -> MatMul(W fp16) -> Cast fp32, W in external data (as the streamed path)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((d, d)).astype(np.float16), "W")
    nodes = [helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
             helper.make_node("MatMul", ["x16", "W"], ["y16"]),
             helper.make_node("Cast", ["y16"], ["y"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", d])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", d])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save_model(model, str(path), save_as_external_data=True, location=f"{path.name}.data", size_threshold=1024)
    return np.random.default_rng(1).standard_normal((3, d)).astype(np.float32)


def test_low_memory_session_has_the_documented_options(tmp_path):
    x = _fp16_graph(tmp_path / "m.onnx")
    low = session(tmp_path / "m.onnx", low_memory=True)
    so = low.get_session_options()
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert so.execution_order == ort.ExecutionOrder.PRIORITY_BASED
    assert not so.enable_cpu_mem_arena
    default = session(tmp_path / "m.onnx")
    assert default.get_session_options().graph_optimization_level != ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # the same numbers: only where the fp16 -> fp32 weight cast happens changes (each run, not at load)
    np.testing.assert_allclose(low.run(["y"], {"x": x})[0], default.run(["y"], {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_low_memory_options_keep_fp16_weights_unfolded(tmp_path):
    """What the options are for: ORT's session graph keeps the fp16 weight (memory-mapped external data)
    instead of folding the Cast its CPU provider inserts before the fp16 MatMul into an fp32 copy."""
    _fp16_graph(tmp_path / "m.onnx")
    so = ort.SessionOptions()
    low_memory_options(so)
    so.optimized_model_filepath = str(tmp_path / "seen.onnx")
    ort.InferenceSession(str(tmp_path / "m.onnx"), so, providers=["CPUExecutionProvider"])
    seen = onnx.load(str(tmp_path / "seen.onnx"), load_external_data=False).graph
    w = [i for i in seen.initializer if list(i.dims) == [256, 256]]
    assert len(w) == 1 and w[0].data_type == TensorProto.FLOAT16, [(i.name, i.data_type) for i in seen.initializer]


def test_automatic_low_memory_only_when_the_fp32_copy_would_not_fit(tmp_path):
    _fp16_graph(tmp_path / "m.onnx")
    size = (tmp_path / "m.onnx").stat().st_size + (tmp_path / "m.onnx.data").stat().st_size
    cpu = ["CPUExecutionProvider"]
    assert needs_low_memory(tmp_path / "m.onnx", "fp16", cpu, available=4 * size - 2)  # 2x size > half of it
    assert not needs_low_memory(tmp_path / "m.onnx", "fp16", cpu, available=4 * size + 4)
    assert not needs_low_memory(tmp_path / "m.onnx", "fp32", cpu, available=1)  # no fp16 weight to fold
    assert not needs_low_memory(tmp_path / "m.onnx", "fp16", ["CUDAExecutionProvider", "CPUExecutionProvider"], 1)


def test_backend_low_memory_is_explicit_or_automatic(tmp_path):
    x = _fp16_graph(tmp_path / "m.onnx")
    ort_level = ort.GraphOptimizationLevel
    forced = OnnxBackend.from_file(tmp_path / "m.onnx", "y", RunOptions(low_memory=True), precision="fp16")
    auto = OnnxBackend.from_file(tmp_path / "m.onnx", "y", RunOptions(), precision="fp16")  # tiny: fits
    assert forced.low_memory and not auto.low_memory
    assert forced.session.get_session_options().graph_optimization_level == ort_level.ORT_DISABLE_ALL
    assert auto.session.get_session_options().graph_optimization_level != ort_level.ORT_DISABLE_ALL
    np.testing.assert_allclose(forced.session.run(["y"], {"x": x})[0], auto.session.run(["y"], {"x": x})[0],
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="low_memory 'yes' must be True, False or None"):
        RunOptions(low_memory="yes")
