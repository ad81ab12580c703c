"""When quantization goes layer-streamed: a model exported in memory whose graph merely passed the
external-data size (Qwen2.5-0.5B's fp32 graph, 1.98 GB) keeps every method (ov-int8, int8-dynamic, ...)."""
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from l2v.quantize.streamed import applies


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """(a graph with its weight in external data, the same graph with the weight inline)."""
    root = tmp_path_factory.mktemp("ext")
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    model = helper.make_model(g)
    onnx.save(model, root / "inline.onnx")
    onnx.save(model, root / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.onnx.data", size_threshold=0)
    return root / "ext.onnx", root / "inline.onnx"


def ctx(path, plan_path=None, torch=True, layerwise=None):
    timings = {"resource_plan": {"path": plan_path}} if plan_path else {}
    manifest = SimpleNamespace(timings=timings, variants_of=lambda kind: ["torch"] if torch and kind == "torch" else [])
    return SimpleNamespace(source_path=path, manifest=manifest, layerwise=layerwise)


def test_a_streaming_export_streams(graphs):
    assert applies(ctx(graphs[0], "stream", torch=False, layerwise=object()))


def test_the_recorded_export_path_decides_for_external_data(graphs):
    ext, inline = graphs
    assert applies(ctx(ext, "stream")) and applies(ctx(ext, "stream", torch=False))
    assert not applies(ctx(ext, "memory"))  # in memory at export: in memory now, whatever the graph's size
    assert not applies(ctx(inline, "stream"))  # weights inline: the in-memory handlers read them


def test_without_a_recorded_plan_torch_weights_decide(graphs):
    assert not applies(ctx(graphs[0], None, torch=True))
    assert applies(ctx(graphs[0], None, torch=False))
