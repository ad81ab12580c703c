"""trt-* variants on the tiny llama artifact, without TensorRT: the TensorRT-ready graphs (simplified,
strongly typed, fp32 islands), the Q/DQ int8/fp8 graphs run on ONNX Runtime, the recall gate, the build
plans, and the CLI / load paths that say the engine was not built. The engine itself is tested under the
`trt` marker (test_engine_*), which needs TensorRT and a CUDA GPU."""
import importlib.util
import json
from collections import Counter

import numpy as np
import pytest

from l2v.errors import InputError, OptionalDependencyError
from l2v.quantize.api import RecallGateError

FLOAT, FLOAT16 = 1, 10


def _graph(artifact, name):
    import onnx

    return onnx.load(str(artifact / f"model_{name}.onnx"))


def _types(model):
    from l2v.quantize.trt_typed import value_types

    return value_types(model)


def test_fp16_graph_is_simplified_typed_and_keeps_fp32_islands(artifact, texts):
    from l2v.quantize import quantize_artifact
    from l2v.quantize.trt_graph import opset_of, trt_unsupported
    from l2v.quantize.trt_typed import consistency_errors

    entry = quantize_artifact(artifact, ["trt-fp16"], calib=texts[0], eval=texts[1], speed=False)["trt-fp16"]
    f = entry.facts
    assert entry.kind == "trt" and entry.dtype == "fp16"
    assert f["nodes_simplified"] < f["nodes_exported"]  # the K^T Reshape-Transpose-Reshape fold
    assert entry.gate["min_cosine"] > 0.999 and entry.gate["measured_on"].endswith("tensorrt")
    m = _graph(artifact, "trt-fp16")
    assert trt_unsupported(m) == [] and opset_of(m) >= 19 and consistency_errors(m) == []
    types = _types(m)
    ops = Counter(n.op_type for n in m.graph.node)
    assert ops["Softmax"] == 2 and ops["MatMul"] >= 14
    for n in m.graph.node:  # norms, softmax, pooling, L2 in fp32; the projections in fp16
        if n.op_type in ("Softmax", "ReduceMean", "ReduceSum", "ReduceL2", "Pow", "Sqrt"):
            assert types[n.output[0]] == FLOAT, (n.op_type, n.name)
        if n.op_type == "MatMul" and all(types.get(i) == FLOAT16 for i in n.input):
            assert types[n.output[0]] == FLOAT16
    assert sum(types.get(n.output[0]) == FLOAT16 for n in m.graph.node if n.op_type == "MatMul") >= 14
    classes = f["precision_policy"]["node_classes"]
    assert classes["fp32:norm"] >= 5 and classes["fp32:softmax"] == 2 * 2 and classes["fp32:tail"] >= 2
    _bench_plans_the_engine_row(artifact)


def _bench_plans_the_engine_row(artifact):
    """l2v-bench: a trt-* variant gets a `trt` row (its engine) once an engine is recorded; not before."""
    from l2v.artifact import open_artifact
    from l2v.bench.config import BenchConfig
    from l2v.bench.session import runner_plan

    art = open_artifact(artifact)
    config = BenchConfig(targets=[str(artifact)], backends=("trt",))
    assert [(b, p) for b, p, _ in runner_plan(art, config, "cuda")][1:] == [("trt", "fp32")]
    art.manifest.variants["trt-fp16"].facts["engine"] = {"engine": "model_trt-fp16.engine", "tensorrt": "10.9"}
    assert [(b, p) for b, p, _ in runner_plan(art, config, "cuda")][1:] == [("trt", "trt-fp16"), ("trt", "fp32")]


@pytest.mark.parametrize("kind", ["int8", "fp8"])
def test_qdq_graph_structure_and_ort_run(artifact, texts, kind):
    from onnx import TensorProto

    import l2v
    from l2v.eval.metrics import cosine_stats
    from l2v.quantize import quantize_artifact
    from l2v.model.arch import ARCHS
    from l2v.quantize import graph
    from l2v.quantize.trt_graph import opset_of, trt_unsupported

    ARCH = ARCHS["llama"]

    name = f"trt-{kind}"
    spec = f"{name}:outlier_channels=4,keep_units=1"
    entry = quantize_artifact(artifact, [spec], calib=texts[0], eval=texts[1], speed=False)[name]
    f = entry.facts
    assert f["kept_units"] and len(f["kept_units"]) == 1 and f["kept_fp16_matmuls"] >= 1
    assert f["quantized_matmuls"] == 2 * 7 - f["kept_fp16_matmuls"]
    m = _graph(artifact, name)
    ops = Counter(n.op_type for n in m.graph.node)
    assert ops["QuantizeLinear"] == f["activation_tensors"] > 0
    assert ops["DequantizeLinear"] == f["quantized_matmuls"] + f["activation_tensors"]
    inits = {i.name: i for i in m.graph.initializer}
    qtype = TensorProto.INT8 if kind == "int8" else TensorProto.FLOAT8E4M3FN
    weights, dq_out = 0, {n.output[0] for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    for n in m.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zp = inits[n.input[2]]  # symmetric: zero point 0 of the quantized type
        assert zp.data_type == qtype and not any(zp.raw_data or b"") and not any(zp.int32_data)
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:  # weight codes, one scale per output channel
            weights += 1
            w, s = inits[n.input[0]], inits[n.input[1]]
            assert w.data_type == qtype and [a.i for a in n.attribute if a.name == "axis"] == [1]
            assert list(s.dims) == [w.dims[1]]
        if n.op_type == "QuantizeLinear":  # activations: one static scale per tensor
            assert list(inits[n.input[1]].dims) == []
    assert weights == f["quantized_matmuls"]
    patterns = [p for u in f["kept_units"] for p in ARCH.unit_patterns(u)]
    kept = graph.node_names(m, patterns)  # MatMuls of the kept unit whose B is still a plain (fp16) weight
    assert len(kept) == f["kept_fp16_matmuls"]
    quantized = [n for n in m.graph.node if n.op_type == "MatMul" and n.input[1] in dq_out]
    assert len(quantized) == f["quantized_matmuls"]
    assert not any(graph.matches(graph.module_name(n), patterns) for n in quantized)
    assert trt_unsupported(m) == [] and opset_of(m) >= 19
    ref = l2v.load(artifact, variant="fp32").encode(texts[1][:8])
    got = l2v.load(artifact, variant=name).encode(texts[1][:8])  # the Q/DQ graph on ONNX Runtime
    assert np.isfinite(got).all() and cosine_stats(ref, got)["min"] > 0.9
    assert entry.gate["measured_on"] == "ONNX Runtime (CPU), standing in for tensorrt"


def test_gate_refuses_a_trt_variant_and_writes_nothing(artifact, texts):
    from l2v.quantize import quantize_artifact

    before = sorted(p.name for p in artifact.iterdir())
    manifest = (artifact / "l2v.json").read_text()
    with pytest.raises(RecallGateError, match="trt-fp8"):  # naive fp8 on random weights: recall@10 < 1
        quantize_artifact(artifact, ["trt-fp8:outlier_channels=0,keep_units=0"], calib=texts[0],
                          eval=texts[1], min_recall=1.0, speed=False)
    assert sorted(p.name for p in artifact.iterdir()) == before and (artifact / "l2v.json").read_text() == manifest


def test_build_plan_contents_and_trtexec():
    from l2v.trt.plan import BuildPlan, make_plan, parse_shapes, trtexec_command

    profiles = parse_shapes("batch=1:8:32,seq=1:64:256;batch=1:1:1,seq=1:32:256", 512)
    plan = make_plan("trt-int8", "int8", "model_trt-int8.onnx", True, profiles, {"compute": "fp16"}, 2 << 30, 3,
                     ["input_ids", "attention_mask", "pooling_mask"], "sentence_embedding")
    d = plan.to_dict()
    assert d["profiles"] == [{"batch": [1, 8, 32], "sequence": [1, 64, 256]}, {"batch": [1, 1, 1], "sequence": [1, 32, 256]}]
    assert d["network_flags"] == ["STRONGLY_TYPED"] and d["precision_policy"] == {"compute": "fp16"}
    assert BuildPlan.from_dict(json.loads(json.dumps(d))) == plan
    cmd = trtexec_command(plan)
    assert "--stronglyTyped" in cmd and "--onnx=model_trt-int8.onnx" in cmd
    assert "--maxShapes=input_ids:32x256,attention_mask:32x256,pooling_mask:32x256" in cmd
    assert not any(f in cmd.split() for f in ("--fp16", "--int8", "--fp8", "--bf16"))
    assert parse_shapes(None, 256)[0].sequence == (1, 128, 256)
    for bad in ("batch=4:2:8", "seq=1:64:1024", "batch=a:b:c"):
        with pytest.raises(InputError):
            parse_shapes(bad, 512)


@pytest.mark.slow  # a second export of the tiny model (~25 s CPU)
def test_export_trt_writes_graphs_and_plans_and_says_no_engine(tiny_artifact, tmp_path, capsys, monkeypatch):
    """`l2v-export --trt` on a machine without TensorRT: exit 0, graphs + plans, one line saying how to build."""
    from l2v.cli.export import main
    from l2v.trt import engine

    if engine.unavailable_reason() is None:
        pytest.skip("TensorRT and a GPU are here: export builds the engine (test_engine_build_run)")
    src = tiny_artifact.parent / "hf"
    out = tmp_path / "art"
    rc = main([str(src), "--out", str(out), "--trt", "--trt-precision", "fp16", "--trt-precision", "int8",
               "--trt-shapes", "batch=1:2:4,seq=1:16:32", "--quiet"])
    assert rc == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "TensorRT engines not built" in ln]
    assert len(lines) == 1 and f"l2v-build-trt {out}" in lines[0] and "pip install 'l2v-export[trt]'" in lines[0]
    manifest = json.loads((out / "l2v.json").read_text())
    for p in ("fp16", "int8"):
        v = manifest["variants"][f"trt-{p}"]
        assert v["kind"] == "trt" and v["facts"]["engine"] is None
        plan = json.loads((out / f"model_trt-{p}.plan.json").read_text())
        assert plan["precision"] == p and plan["profiles"] == [{"batch": [1, 2, 4], "sequence": [1, 16, 32]}]
        assert plan["trtexec"].startswith(f"trtexec --onnx=model_trt-{p}.onnx ")


def test_load_trt_variant_runs_its_graph_on_ort_saying_so_once(artifact, texts, capsys):
    import l2v
    from l2v.quantize import quantize_artifact
    from l2v.trt import engine

    if engine.unavailable_reason() is None:
        pytest.skip("TensorRT and a GPU are here: the engine runs instead")
    quantize_artifact(artifact, ["trt-int8:outlier_channels=4,keep_units=0"], calib=texts[0], eval=texts[1], speed=False)
    capsys.readouterr()
    m = l2v.load(artifact, variant="trt-int8")
    a, b = m.encode(["first text"]), m.encode(["second text", "third"])
    assert a.shape == (1, 64) and b.shape == (2, 64)
    said = [ln for ln in capsys.readouterr().err.splitlines() if "trt-int8" in ln and "ONNX Runtime" in ln]
    assert len(said) <= 1  # once per process and variant (an earlier test may already have said it)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'l2v-export\[trt\]'"):
        l2v.load(artifact, variant="trt-int8", backend="trt")


def test_build_trt_cli_gives_the_install_hint(tiny_artifact, capsys):
    from l2v.cli.build_trt import main

    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed")
    except ImportError:
        pass
    assert main([str(tiny_artifact)]) != 0
    assert "pip install 'l2v-export[trt]'" in capsys.readouterr().err


def test_unknown_trt_precision_and_stray_flags_are_refused():
    from l2v.export.options import ExportOptions

    with pytest.raises(InputError, match="--trt-precision|int4"):
        ExportOptions(trt=True, trt_precisions=["int4"]).check()
    with pytest.raises(InputError, match="--trt-shapes without --trt"):
        ExportOptions(trt_shapes="batch=1:2:4").check()


# ---------------------------------------------------------------------- where TensorRT and a GPU exist
NO_TRT = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                            reason="TensorRT is not installed (pip install 'l2v-export[trt]' on a CUDA GPU machine)")


def _needs_engine():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install 'l2v-export[trt]' on a GPU machine)")
    from l2v.trt.engine import unavailable_reason

    if unavailable_reason():
        pytest.skip(unavailable_reason())


@pytest.mark.trt
@NO_TRT
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_engine_build_run(artifact, texts, precision):
    import l2v
    from l2v.eval.metrics import cosine_stats
    from l2v.export.trt import build_engines
    from l2v.quantize import quantize_artifact

    _needs_engine()
    name = f"trt-{precision}"
    quantize_artifact(artifact, [name], calib=texts[0], eval=texts[1], speed=False)
    built = build_engines(artifact, [name])[name]
    assert built["gpu"] and built["tensorrt"] and built["compute_capability"]
    m = l2v.load(artifact, variant=name, backend="trt")
    ref = l2v.load(artifact, variant="fp32").encode(texts[1][:12])
    got = m.encode(texts[1][:12])
    assert cosine_stats(ref, got)["min"] >= (0.999 if precision == "fp16" else 0.9)


@pytest.mark.trt
@NO_TRT
def test_engine_from_another_gpu_or_tensorrt_is_refused(artifact, texts):
    import l2v
    from l2v.export.trt import build_engines
    from l2v.quantize import quantize_artifact
    from l2v.trt.engine import EngineMismatchError

    _needs_engine()
    quantize_artifact(artifact, ["trt-fp16"], calib=texts[0], eval=texts[1], speed=False)
    build_engines(artifact, ["trt-fp16"])
    path = artifact / "l2v.json"
    manifest = json.loads(path.read_text())
    manifest["variants"]["trt-fp16"]["facts"]["engine"].update(gpu="Some Other GPU", tensorrt="9.0.0")
    path.write_text(json.dumps(manifest))
    with pytest.raises(EngineMismatchError, match="Some Other GPU"):
        l2v.load(artifact, variant="trt-fp16", backend="trt").encode(["x"])
