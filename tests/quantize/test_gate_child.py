"""The recall gate of streamed artifacts runs every ONNX graph in an ONNX Runtime child process: the figures
come back, a graph that cannot run or returns NaN is a clear error, and the child's memory is reported."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from l2v.artifact import FileRecord, Variant
from l2v.errors import ValidationError
from l2v.quantize.gate import Gate
from l2v.quantize.registry import Built
from l2v.text.batch import Batch

VOCAB, DIM = 50, 8


def bag_of_tokens(path: Path, table: np.ndarray) -> Path:
    """sentence_embedding = sum over pooled tokens of table[input_ids]: a real ONNX graph with our inputs."""
    ids, att, pool = (helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"])
                      for n in ("input_ids", "attention_mask", "pooling_mask"))
    out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["b", DIM])
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["h"]),
             helper.make_node("Cast", ["pooling_mask"], ["m"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["m", "axis2"], ["m3"]),
             helper.make_node("Mul", ["h", "m3"], ["hm"]),
             helper.make_node("ReduceSum", ["hm", "axis1"], ["sentence_embedding"], keepdims=0),
             helper.make_node("Identity", ["attention_mask"], ["unused"])]
    inits = [numpy_helper.from_array(table.astype(np.float32), "table"),
             numpy_helper.from_array(np.array([2], np.int64), "axis2"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    g = helper.make_graph(nodes, "bag", [ids, att, pool], [out], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


class Ctx:
    """What the gate reads of a quantization context: padded batches of texts, the reference graph."""
    output = "sentence_embedding"
    source_name = "fp16"

    def __init__(self, source: Path):
        self.source_path = source

    def batches(self, texts, max_length, batch=16):
        rows = [[(sum(map(ord, t)) * (j + 7)) % VOCAB for j in range(min(max_length, 3 + len(t) % 9))] for t in texts]
        out = []
        for i in range(0, len(rows), batch):
            chunk = rows[i:i + batch]
            width = max(map(len, chunk))
            ids = np.array([r + [0] * (width - len(r)) for r in chunk])
            mask = np.array([[1] * len(r) + [0] * (width - len(r)) for r in chunk])
            out.append(Batch(ids, mask, mask))
        return out


TEXTS = [f"text number {i} about {w}" for i, w in enumerate(["cats", "trains", "rain", "bread", "chess"] * 5)]


def built_graph(path: Path) -> Built:
    return Built(Variant(kind="onnx", dtype="int8", files=[FileRecord(path.name, path.stat().st_size)]))


@pytest.fixture
def gate(tmp_path):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(VOCAB, DIM))
    ref = bag_of_tokens(tmp_path / "ref.onnx", table)
    g = Gate(Ctx(ref), TEXTS, 16, measure_speed=True, speed_tokens=8, one_at_a_time=True)
    return g, table


def test_a_candidate_close_to_the_reference_passes_with_the_childs_figures(gate, tmp_path):
    g, table = gate
    cand = bag_of_tokens(tmp_path / "cand.onnx", table + 1e-4)
    out = g.measure(built_graph(cand), tmp_path)
    assert out["session"] == "low-memory, child process"
    assert out["recall@10"] == 1.0 and out["mean_cosine"] > 0.9999 and out["eval_texts"] == len(TEXTS)
    assert out["size_bytes"] == cand.stat().st_size and out["reference"] == "fp16"
    assert out["ort"]["peak_rss_gib"] > 0 and out["ort"]["run_s"] >= 0
    assert out["speed"]["batch1_ms"] > 0 and out["speed"]["reference_batch1_ms"] > 0


def test_a_different_candidate_loses_recall(gate, tmp_path):
    g, _ = gate
    cand = bag_of_tokens(tmp_path / "cand.onnx", np.random.default_rng(1).normal(size=(VOCAB, DIM)))
    out = g.measure(built_graph(cand), tmp_path)
    assert out["recall@10"] < 0.8 and out["mean_cosine"] < 0.9


def test_a_candidate_returning_nan_is_refused_by_name(gate, tmp_path):
    g, table = gate
    bad = table.copy()
    bad[:, 0] = np.nan
    cand = bag_of_tokens(tmp_path / "nan.onnx", bad)
    with pytest.raises(ValidationError, match="nan.onnx returned non-finite values"):
        g.measure(built_graph(cand), tmp_path)


def test_a_candidate_the_runtime_cannot_load_is_a_validation_error(gate, tmp_path):
    g, _ = gate
    cand = tmp_path / "broken.onnx"
    cand.write_bytes(b"not a graph")
    with pytest.raises(ValidationError, match="the variant could not run: ONNX Runtime could not run broken.onnx"):
        g.measure(built_graph(cand), tmp_path)
    assert not list(tmp_path.glob(".l2v-ort-*"))  # the child's scratch directory is gone
