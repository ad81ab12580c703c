"""The `openvino` variant kind on the tiny llama: IR conversion equals ORT fp32, the int8 IR's structure,
loading through l2v.load, the recall gate refusing an OpenVINO variant, and the install hint without it."""
import json
import sys
import warnings

import numpy as np
import pytest

from l2v.errors import OptionalDependencyError
from l2v.quantize import quantize_artifact
from l2v.runtime.cpu import bf16_arithmetic

TEXTS = ["a short text", "another, somewhat longer text about padding and batching in embedding models",
         "The quick brown fox jumps over the lazy dog.", "numbers 1 2 3 and symbols #!"]


@pytest.fixture()
def ov():
    pytest.importorskip("nncf")
    return pytest.importorskip("openvino")


def _cos_min(a, b) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def test_ir_conversion_equals_ort_fp32(ov, artifact, texts, monkeypatch):
    import l2v

    entry = quantize_artifact(artifact, ["ov-fp32"], eval=texts[1], speed=False)["ov-fp32"]
    assert entry.kind == "openvino" and entry.dtype == "fp32"
    assert [r.path for r in entry.files] == ["model_ov-fp32.xml", "model_ov-fp32.bin"]
    assert all(r.size == (artifact / r.path).stat().st_size and len(r.sha256) == 64 for r in entry.files)
    assert entry.facts["conversion_min_cosine"] >= 0.99999 and entry.gate["recall@10"] == 1.0
    ref = l2v.load(artifact, variant="fp32").encode(TEXTS + texts[1])
    enc = l2v.load(artifact, variant="ov-fp32")
    assert enc.backend.name == "openvino" and enc.backend.properties["INFERENCE_PRECISION_HINT"] == "f32"
    got = enc.encode(TEXTS + texts[1])
    assert got.shape == ref.shape and _cos_min(ref, got) >= 0.99999
    monkeypatch.setitem(sys.modules, "openvino", None)  # the variant without the package: the install hint
    with pytest.raises(OptionalDependencyError, match=r"l2v-export\[openvino\]"):
        l2v.load(artifact, variant="ov-fp32")


def test_int8_ir_structure_and_load(ov, artifact, texts):
    import l2v

    spec = "ov-int8:keep_sensitive=1,calib_texts=16"
    entry = quantize_artifact(artifact, [spec], calib=texts[0], eval=texts[1], speed=False)["ov-int8"]
    facts = entry.facts
    assert entry.kind == "openvino" and entry.dtype == "int8" and facts["mode"] == "ptq"
    # 2 layers x 7 projections: the most sensitive layer's 7 stay fp32 (ignored scope), the other 7 are
    # int8 x int8 behind FakeQuantize nodes, and the CPU plugin runs them as int8 FullyConnected layers
    assert len(facts["kept_layers"]) == 1 and facts["kept_fp32"] == 7
    s = facts["structure"]
    # one activation FakeQuantize per distinct projection input: q/k/v share one, gate/up share one, o, down
    assert s["matmul_fp32"] == 7 and s["matmul_int8_activations"] == 7 and s["FakeQuantize"] == 4
    # the attention MatMuls (Q·K^T and P·V per layer) have no weight and stay fp32: NNCF's transformer
    # preset would put static per-tensor FakeQuantizes on Q·K^T
    assert facts["attention_fp32"] == 4 and s["attention_matmul_fp32"] == 4 and s["attention_matmul_int8"] == 0
    assert any(k.startswith("FullyConnected") and k.endswith(("i8", "u8")) for k in facts["runtime_precisions"])
    manifest = json.loads((artifact / "l2v.json").read_text())
    assert manifest["variants"]["ov-int8"]["quant"]["method"] == "ov-int8"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # built and loaded on this CPU: the plugin's precisions agree, no note
        enc = l2v.load(artifact, variant="ov-int8")
    a, b = enc.encode(TEXTS), enc.encode(TEXTS[:1])
    assert a.shape == (4, 64) and np.isfinite(a).all()
    assert np.allclose(a[:1], b, atol=2e-2)  # static scales: a text's vector does not depend on its batch
    ref = l2v.load(artifact, variant="fp32").encode(TEXTS)
    assert _cos_min(ref, a) > 0.9


def test_weights_mode_asymmetric(ov, artifact, texts):
    """weights=asym: every projection's weight is u8 with a zero point (Subtract) per output channel, no i8
    weight and no FakeQuantize; the variant loads and stays close to fp32."""
    import l2v

    entry = quantize_artifact(artifact, ["ov-int8:mode=weights,weights=asym,keep_sensitive=0"], eval=texts[1],
                              speed=False)["ov-int8"]
    facts, s = entry.facts, entry.facts["structure"]
    assert facts["weights"] == "asym" and s["matmul_int8_weights_only"] == 14 and s["FakeQuantize"] == 0
    model = ov.Core().read_model(str(artifact / "model_ov-int8.xml"))
    consts = [op.get_output_element_type(0).get_type_name() for op in model.get_ops()
              if op.get_type_name() == "Constant" and len(op.get_output_partial_shape(0)) == 2]
    assert consts.count("u8") >= 14 and "i8" not in consts
    assert sum(op.get_type_name() == "Subtract" for op in model.get_ops()) >= 14
    enc = l2v.load(artifact, variant="ov-int8")
    got, ref = enc.encode(TEXTS), l2v.load(artifact, variant="fp32").encode(TEXTS)
    assert got.shape == ref.shape and _cos_min(ref, got) > 0.99


def test_asymmetric_weights_need_weights_mode():
    from l2v.errors import InputError
    from l2v.quantize.config import parse_method

    with pytest.raises(InputError, match=r"weights='asym' needs mode=weights"):
        parse_method("ov-int8:weights=asym")
    with pytest.raises(InputError, match=r"weights"):
        parse_method("ov-int8:mode=weights,weights=int4")
    assert parse_method("ov-int8:mode=weights,weights=asym").weights == "asym"


def test_gate_refuses_a_bad_openvino_variant(ov, artifact, texts):
    from l2v.cli.quantize import main

    before = sorted(p.name for p in artifact.iterdir())
    manifest = (artifact / "l2v.json").read_text()
    calib, ev = (artifact.parent / "calib.txt"), (artifact.parent / "eval.txt")
    calib.write_text("\n".join(texts[0]))
    ev.write_text("\n".join(texts[1]))
    # every projection int8 with static per-tensor scales from 8 texts, no SmoothQuant: recall@10 < 1.0
    code = main([str(artifact), "--quant", "ov-int8:keep_sensitive=0,smoothquant_alpha=none,calib_texts=8",
                 "--min-recall", "1.0", "--calib", str(calib), "--eval", str(ev), "--no-speed", "--quiet"])
    assert code == 3
    assert sorted(p.name for p in artifact.iterdir()) == before
    assert (artifact / "l2v.json").read_text() == manifest


def test_missing_openvino_names_the_extra(monkeypatch, artifact, texts):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'l2v-export\[openvino\]'"):
        quantize_artifact(artifact, ["ov-fp32"], eval=texts[1], speed=False)
    assert "ov-fp32" not in json.loads((artifact / "l2v.json").read_text())["variants"]


def test_load_notes_other_plugin_precisions_than_at_the_gate(ov, artifact, texts):
    """An IR whose build recorded other runtime precisions (as on a CPU where the plugin quantizes what
    it runs in fp32 here, or the reverse) loads with a RuntimeWarning naming both."""
    import l2v

    quantize_artifact(artifact, ["ov-int8:mode=weights,keep_sensitive=0"], eval=texts[1], speed=False)
    path = artifact / "l2v.json"
    m = json.loads(path.read_text())
    facts = m["variants"]["ov-int8"]["facts"]
    here = dict(facts["runtime_precisions"])
    facts["runtime_precisions"] = {"FullyConnected:bogus": sum(here.values())}
    path.write_text(json.dumps(m))
    with pytest.warns(RuntimeWarning, match=r"'ov-int8' was gated on .*FullyConnected:bogus.* there and runs them as "
                                            r"\{.* here") as rec:
        enc = l2v.load(artifact, variant="ov-int8")
    assert any(str(here) in str(w.message) for w in rec if w.category is RuntimeWarning)
    assert enc.encode(TEXTS[:1]).shape == (1, 64)


def test_bf16_variant_runs_bf16_where_the_cpu_can(ov, artifact, texts):
    """ov-bf16: the ov-fp32 IR recorded to compile with bf16 float ops; the backend applies it at load, so
    the vectors differ from ov-fp32's (bf16 rounding) but stay close, and the gate measured the same thing."""
    import l2v

    entries = quantize_artifact(artifact, ["ov-fp32", "ov-bf16"], eval=texts[1], speed=False)
    entry = entries["ov-bf16"]
    assert entry.kind == "openvino" and entry.dtype == "bf16"
    assert entry.facts["plugin"] == {"INFERENCE_PRECISION_HINT": "bf16"} and "plugin" not in entries["ov-fp32"].facts
    assert [r.path for r in entry.files] == ["model_ov-bf16.xml", "model_ov-bf16.bin"]
    enc, f32 = l2v.load(artifact, variant="ov-bf16"), l2v.load(artifact, variant="ov-fp32")
    got, ref = enc.encode(TEXTS), f32.encode(TEXTS)
    assert _cos_min(ref, got) > 0.99
    if bf16_arithmetic():  # the plugin honours bf16 only with bf16 arithmetic: then it must be what ran
        assert enc.backend.properties["INFERENCE_PRECISION_HINT"] == "bf16"
        assert any(k.startswith("FullyConnected") and k.endswith("bf16") for k in entry.facts["runtime_precisions"])
        assert enc.backend.runtime_precisions() == entry.facts["runtime_precisions"]
        assert not np.array_equal(ref, got)
        assert entry.gate["mean_cosine"] < 1.0


def test_int8_weights_with_bf16_compute_and_no_runtime_activation_int8(ov, artifact, texts):
    """ov-int8:mode=weights,compute=bf16,dynamic_group=0: int8 weights decompressed into bf16 matmuls (no
    activation is quantized at run time), recorded and applied at load."""
    import l2v

    spec = "ov-int8:mode=weights,weights=asym,keep_sensitive=0,compute=bf16,dynamic_group=0,name=ov-w8bf16"
    entry = quantize_artifact(artifact, [spec], eval=texts[1], speed=False)["ov-w8bf16"]
    assert entry.facts["plugin"] == {"INFERENCE_PRECISION_HINT": "bf16", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}
    assert entry.facts["structure"]["matmul_int8_weights_only"] == 14
    enc = l2v.load(artifact, variant="ov-w8bf16")
    assert str(enc.backend.properties["DYNAMIC_QUANTIZATION_GROUP_SIZE"]) == "0"
    a, b = enc.encode(TEXTS), enc.encode(TEXTS[:1])
    assert np.allclose(a[:1], b, atol=2e-2)
    ref = l2v.load(artifact, variant="fp32").encode(TEXTS)
    assert _cos_min(ref, a) > 0.99
    # what loaded is the IR compiled with exactly the recorded properties; on a VNNI CPU the plugin's default
    # (activations quantized at run time) gives other vectors
    from l2v.runtime.cpu import EXACT, int8_gemm
    from l2v.runtime.openvino import OpenVINOBackend, compile_model

    path, out = artifact / "model_ov-w8bf16.xml", enc.backend.output.get_any_name()
    enc.backend = OpenVINOBackend(compile_model(path, precision="bf16", properties={"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}),
                                  out)
    assert np.array_equal(enc.encode(TEXTS), a)
    enc.backend = OpenVINOBackend(compile_model(path, precision="bf16"), out)
    if int8_gemm() == EXACT:
        assert not np.array_equal(enc.encode(TEXTS), a)
    if bf16_arithmetic():
        assert str(enc.backend.properties["INFERENCE_PRECISION_HINT"]) == "bf16"


def test_openvino_compute_options_are_checked():
    from l2v.errors import InputError
    from l2v.quantize.config import parse_method

    with pytest.raises(InputError, match=r"compute='fp16' is not supported.*f32, bf16"):
        parse_method("ov-int8:mode=weights,compute=fp16")
    with pytest.raises(InputError, match=r"dynamic_group=0 needs mode=weights"):
        parse_method("ov-int8:dynamic_group=0")
    with pytest.raises(InputError, match=r"dynamic_group=-1 must be an integer >= 0"):
        parse_method("ov-int8:mode=weights,dynamic_group=-1")
    cfg = parse_method("ov-int8:mode=weights,compute=bf16,dynamic_group=0")
    assert (cfg.compute, cfg.dynamic_group) == ("bf16", 0)


def test_load_refuses_plugin_properties_l2v_does_not_record(ov, artifact, texts):
    import l2v
    from l2v.errors import ArtifactError

    quantize_artifact(artifact, ["ov-bf16"], eval=texts[1], speed=False)
    path = artifact / "l2v.json"
    m = json.loads(path.read_text())
    m["variants"]["ov-bf16"]["facts"]["plugin"]["NUM_STREAMS"] = 8
    path.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=r"facts.plugin sets NUM_STREAMS"):
        l2v.load(artifact, variant="ov-bf16", verify=False)
    m["variants"]["ov-bf16"]["facts"]["plugin"] = {"INFERENCE_PRECISION_HINT": "f16"}
    path.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=r"inference precision 'f16'"):
        l2v.load(artifact, variant="ov-bf16", verify=False)


def test_ov_auto_keeps_the_fastest_passing_candidate_and_records_the_search(ov, artifact, texts):
    """ov-auto: every recipe the CPU can run is tried (the int8-weight ones with k layers kept, k searched),
    the choice's files become the variant, nothing of the search is left behind, and the recorded
    equivalent spec rebuilds the same variant (same vectors)."""
    import l2v

    entries = quantize_artifact(artifact, ["ov-auto:min_recall=0.5", "ov-auto:min_recall=1.0,families=w8,name=ov-a1"],
                                calib=texts[0], eval=texts[1], speed=False)
    entry, facts = entries["ov-auto"], entries["ov-auto"].facts
    expected = ["bf16", "w8-bf16", "w8"] if bf16_arithmetic() else ["w8"]
    assert list(facts["search"]) == expected and facts["chosen_family"] in expected
    assert facts["target_recall"] == 0.5 and entry.gate["recall@10"] >= 0.5
    assert facts["search"][facts["chosen_family"]][str(facts["chosen_keep_sensitive"] or 0)] >= 0.5
    if len(expected) > 1:
        assert set(facts["candidates_batch32_ms"]) <= set(expected)
    assert [r.path for r in entry.files] == ["model_ov-auto.xml", "model_ov-auto.bin"]
    assert not (artifact / ".ov_auto").exists() and not list(artifact.glob("**/.ov_auto*"))
    # an unreachable target: k grows to every layer kept (2 on the tiny llama; the embedding stays int8), and
    # the most faithful try is kept
    a1 = entries["ov-a1"].facts
    tries = a1["search"]["w8"]
    assert "2" in tries and max(tries.values()) < 1.0
    best = max(tries, key=tries.get)
    assert a1["chosen_keep_sensitive"] == int(best) and entries["ov-a1"].gate["recall@10"] == tries[best]
    spec = a1["equivalent"]
    assert spec["method"] == "ov-int8" and spec["mode"] == "weights" and spec["keep_sensitive"] == int(best)
    rebuilt = ",".join(f"{k}={v}" for k, v in (("mode", "weights"), ("weights", spec["weights"]),
                                                ("keep_sensitive", int(best)), ("name", "ov-again")))
    quantize_artifact(artifact, [f"ov-int8:{rebuilt}"], calib=texts[0], eval=texts[1], speed=False)
    np.testing.assert_array_equal(l2v.load(artifact, variant="ov-a1").encode(TEXTS),
                                  l2v.load(artifact, variant="ov-again").encode(TEXTS))


def test_ov_auto_options_are_checked():
    from l2v.errors import InputError
    from l2v.quantize import parse_method

    for bad in ("ov-auto:families=fp8", "ov-auto:min_recall=2", "ov-auto:step=0"):
        with pytest.raises(InputError):
            parse_method(bad).check()


def test_ov_auto_picks_the_most_faithful_of_equally_fast_candidates():
    from l2v.quantize.ov_auto import _pick

    passing = {"bf16": (0.99, None, None), "w8": (0.96, None, None), "w8-bf16": (0.97, None, None)}
    assert _pick(passing, {"bf16": 772.0, "w8": 774.0, "w8-bf16": 902.0}) == "bf16"  # a tie: recall decides
    assert _pick(passing, {"bf16": 900.0, "w8": 700.0, "w8-bf16": 720.0}) == "w8-bf16"
    assert _pick(passing, {"bf16": 900.0, "w8": 600.0, "w8-bf16": 720.0}) == "w8"
    assert _pick({"w8": (0.96, None, None)}, {}) == "w8"


def test_ov_auto_search_policy(monkeypatch, tmp_path):
    """The search without OpenVINO: each int8 recipe's k grows until it passes (then bisects), w8-bf16 gets one
    try when bf16 failed (its kept layers still run bf16), and the most faithful of equally fast passing
    candidates wins."""
    from types import SimpleNamespace

    from l2v.artifact import FileRecord, Variant
    from l2v.quantize import ov_auto
    from l2v.quantize.config import OvAutoConfig

    recall = {"bf16": lambda k: 0.94, "w8-bf16": lambda k: 0.93 + k / 1000, "w8": lambda k: 0.90 + k / 100}
    tries = []

    def fake_try(ctx, cfg, family, k, work):
        tries.append((family, k))
        where = work / f"{family}_k{k}"
        where.mkdir(parents=True)
        (where / "model_ov-auto.xml").write_text(f"{family} {k}")
        built = SimpleNamespace(variant=Variant("openvino", "int8", [FileRecord("model_ov-auto.xml", 1, "x")]))
        return recall[family](k), built, where

    monkeypatch.setattr(ov_auto, "_try", fake_try)
    monkeypatch.setattr(ov_auto, "_timings", lambda ctx, passing: {f: 100.0 for f in passing})
    monkeypatch.setattr("l2v.runtime.cpu.bf16_arithmetic", lambda flags=None: True)
    ctx = SimpleNamespace(min_recall=None, progress=lambda msg: None,
                          artifact=SimpleNamespace(manifest=SimpleNamespace(model=SimpleNamespace(num_layers=30))))
    built = ov_auto.build_ov_auto(ctx, OvAutoConfig(), tmp_path)
    facts = built.variant.facts
    assert facts["search"] == {"bf16": {"0": 0.94}, "w8-bf16": {"0": 0.93},
                               "w8": {"0": 0.9, "2": 0.92, "4": 0.94, "6": 0.96, "8": 0.98}}
    assert ("w8-bf16", 2) not in tries  # bounded by bf16's failed recall: no k search
    assert facts["chosen_family"] == "w8" and facts["chosen_keep_sensitive"] == 6  # within `step` of the smallest
    assert facts["equivalent"]["keep_sensitive"] == 6 and facts["equivalent"]["name"] is None
    assert (tmp_path / "model_ov-auto.xml").read_text() == "w8 6" and not (tmp_path / ".ov_auto").exists()
