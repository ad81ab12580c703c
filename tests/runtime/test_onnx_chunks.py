"""Running a streamed graph a chunk of weights at a time (l2v.runtime.onnx_chunks) gives the whole graph's
outputs: bitwise for fp32 and int8 graphs, within fp16 rounding for fp16 ones (a border value is rounded to
the fp16 the graph declares, where the whole CPU session keeps some in fp32)."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import l2v
from l2v.artifact import open_artifact
from l2v.runtime.onnx import session
from l2v.runtime.onnx_child import run_in_child
from l2v.runtime.onnx_chunks import borders, initializer_bytes, plan_chunks, run_chunked

TEXTS = ["A short one.", "The quick brown fox jumps over the lazy dog, twice, for good measure.",
         "Embedding models map text to vectors.", "x", "Rain again in the valley, and the trains are late."]


@pytest.fixture(scope="module")
def art(synth, tmp_path_factory):
    """tiny-qwen2 (q/k/v biases) + MNTP, streamed: fp32 and fp16 graphs, w8 and int8-smooth variants."""
    base, adapters = synth["tiny-qwen2"]
    out = tmp_path_factory.mktemp("chunks") / "art"
    return l2v.export_model(str(base), out, adapters=[str(adapters[0])], dtype="fp32,fp16", stream="on",
                            quant=["w8", "int8-smooth:calib_texts=16"], progress=False, max_length=64)


@pytest.fixture(scope="module")
def batches(art):
    pre = open_artifact(art).preprocessor(64)
    rows = pre.rows(TEXTS)
    return [pre.pad(rows[:3]).as_dict(), pre.pad(rows[3:]).as_dict(), pre.pad(rows[1:2]).as_dict()]


def whole(path, batches):
    s = session(path, spinning=False, low_memory=True)
    return [s.run(["sentence_embedding"], b)[0] for b in batches]


def test_chunks_cover_the_nodes_in_order_within_the_budget(art):
    g = onnx.load(str(art / "model.onnx"), load_external_data=False).graph
    size = {t.name: initializer_bytes(t) for t in g.initializer}
    budget = max(size.values())
    chunks = plan_chunks(g, budget)
    assert len(chunks) > 3
    assert [i for r in chunks for i in r] == list(range(len(g.node)))
    for r in chunks:
        reads = {x for i in r for x in g.node[i].input if x in size}
        assert len(r) == 1 or sum(size[x] for x in reads) <= budget
    edges = borders(g, chunks)
    assert edges[0][0] and set(edges[0][0]) <= {"input_ids", "attention_mask", "pooling_mask"}
    assert edges[-1][1] == ["sentence_embedding"]
    for (_, outs), (ins, _) in zip(edges, edges[1:]):  # every value a chunk reads was made before it
        assert ins and set(ins) <= {x for _, o in edges for x in o} | {"input_ids", "attention_mask", "pooling_mask"}
    assert plan_chunks(g, 1 << 40) == [range(len(g.node))]


@pytest.mark.parametrize("graph", ["model.onnx", "model_w8.onnx", "model_int8-smooth.onnx"])
def test_chunked_run_equals_the_whole_graph_bitwise(art, batches, graph):
    ref = whole(art / graph, batches)
    g = onnx.load(str(art / graph), load_external_data=False).graph
    total = sum(initializer_bytes(t) for t in g.initializer)
    for budget in (total // 3, total // 12):
        got = run_chunked(art / graph, batches, "sentence_embedding", budget)
        assert len(plan_chunks(g, budget)) > 1
        for a, b in zip(got, ref):
            assert np.array_equal(a, b), (graph, budget, np.abs(a - b).max())


def test_chunked_fp16_is_within_fp16_rounding_of_the_whole_graph(art, batches):
    ref = np.concatenate(whole(art / "model_fp16.onnx", batches))
    g = onnx.load(str(art / "model_fp16.onnx"), load_external_data=False).graph
    got = np.concatenate(run_chunked(art / "model_fp16.onnx", batches, "sentence_embedding",
                                     max(initializer_bytes(t) for t in g.initializer)))
    cos = np.sum(ref * got, 1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() >= 0.9999 and np.abs(got - ref).max() < 1e-2


def test_the_child_runs_chunked_and_says_so(art, batches, tmp_path):
    got, report = run_in_child(art / "model.onnx", batches, "sentence_embedding", tmp_path, chunk_bytes=64 << 10)
    assert report["chunks"]["count"] > 1 and report["chunks"]["max_weight_bytes"] == 64 << 10
    assert report["after_open_gib"]["rss"] > 0 and report["peak_rss_gib"] > 0
    assert np.array_equal(got, np.concatenate(whole(art / "model.onnx", batches)))
    got0, report0 = run_in_child(art / "model.onnx", batches, "sentence_embedding", tmp_path, chunk_bytes=0)
    assert "chunks" not in report0 and np.array_equal(got0, got)


def test_a_graph_with_control_flow_stays_one_chunk():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "b", [], [y])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Cast", ["r"], ["c"], to=TensorProto.BOOL),
             helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)]
    g = helper.make_graph(nodes, "g", [x], [y])
    assert plan_chunks(g, 1) == [range(3)]
