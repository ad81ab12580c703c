"""Every registered method on a tiny exported model: valid graph, expected quantized ops, gate, atomicity."""
import json

import numpy as np
import pytest

from l2v.errors import InputError, L2VError
from l2v.quantize import config_from_dict, methods, parse_method, quantize_artifact

# method spec -> (ONNX op that must appear, how many of them) for the tiny llama (2 layers x 7 projections)
TABLE = {
    "fp16": ("MatMul", 18),
    "bf16": ("Cast", None),
    "int8-dynamic": ("MatMulInteger", 14),
    "int8-smooth": ("MatMulIntegerToFloat", 14),
    "int8-smooth:fused=false": ("MatMulInteger", 14),
    "int8-smooth:reduce_range=true": ("MatMulIntegerToFloat", 14),
    "int8-smooth:smoothing=true,outlier_channels=0": ("MatMulIntegerToFloat", 14),
    "int8-smooth:kernel=nbits": ("MatMulNBits", 14),
    "int8-smooth:kernel=integer": ("DynamicQuantizeLinear", None),
    "w8": ("MatMulNBits", 14),
    "w4": ("MatMulNBits", 14),
    "w4:algorithm=hqq": ("MatMulNBits", 14),
    "w4:algorithm=rtn": ("MatMulNBits", 14),
    "w4:keep_8bit=self_attn": ("MatMulNBits", 14),
    "auto": ("chosen", 14),  # the op of the kernel the search chose
    "auto:kernels=token": ("MatMulIntegerToFloat", 14),
    "auto:kernels=nbits": ("MatMulNBits", 14),
    "bnb-int8": (None, None),
    "bnb-nf4": (None, None),
    "ov-fp32": ("openvino", None),  # kind openvino: tests/quantize/test_openvino.py
    "ov-bf16": ("openvino", None),
    "ov-int8": ("openvino", None),
    "ov-auto": ("openvino", None),
}
# one activation scale for the whole batch: results depend on the batch's other texts (and padding)
PER_TENSOR = {"int8-dynamic", "int8-smooth:kernel=integer"}


TRT = {"trt-fp16", "trt-bf16", "trt-int8", "trt-fp8"}  # kind trt, not onnx: tests/quantize/test_trt.py


def test_every_registered_method_is_in_the_table():
    assert set(methods()) == {spec.split(":")[0] for spec in TABLE} | TRT


@pytest.mark.parametrize("spec", sorted(TABLE))
def test_method_builds_a_valid_variant(spec, artifact, texts):
    import onnx

    import l2v

    if spec.startswith("bnb"):
        pytest.importorskip("bitsandbytes")
    if TABLE[spec][0] == "openvino":
        pytest.skip("OpenVINO IR variants are tested in test_openvino.py")
    cfg = parse_method(spec)
    if cfg.method == "int8-smooth":
        cfg.keep_sensitive = 1
    entries = quantize_artifact(artifact, [cfg], calib=texts[0], eval=texts[1], speed=False)
    entry = entries[cfg.variant]
    manifest = json.loads((artifact / "l2v.json").read_text())
    assert config_from_dict(entry.quant) == cfg
    gate = entry.gate
    assert gate["eval_texts"] == 24 and 0.0 <= gate["recall@10"] <= 1.0
    assert manifest["variants"][cfg.variant]["kind"] == entry.kind
    if entry.kind == "bnb":
        assert manifest["variants"][cfg.variant]["base"] == "torch" and not entry.files
        assert l2v.load(artifact, variant=cfg.variant).encode(["a short text"]).shape == (1, 64)
        return
    assert entry.kind == "onnx" and all(r.size and r.sha256 for r in entry.files)
    facts = entry.facts
    model = onnx.load(str(artifact / entry.main.path))
    onnx.checker.check_model(model)
    op, count = TABLE[spec]
    if op == "chosen":
        assert set(facts["search"]) == {"token", "nbits"} and facts["chosen_kernel"] in facts["search"]
        op = {"token": "MatMulIntegerToFloat", "nbits": "MatMulNBits"}[facts["chosen_kernel"]]
    ops = [n.op_type for n in model.graph.node]
    if count is not None:  # projections kept in fp32 (int8-smooth's most sensitive units) are not quantized
        assert ops.count(op) == count - facts.get("kept_fp32", 0)
    assert op in ops
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask", "pooling_mask"]
    assert [o.name for o in model.graph.output] == ["sentence_embedding"]
    enc = l2v.load(artifact, variant=cfg.variant)
    a, b = enc.encode(["a short text", "another, somewhat longer text about padding"]), enc.encode(["a short text"])
    assert a.shape == (2, 64)  # dynamic axes
    if spec not in PER_TENSOR:  # per-token/per-block scales: a text's vector does not depend on its batch
        assert np.allclose(a[:1], b, atol=2e-2)


def test_w4_keep_8bit_mixes_bit_widths(artifact, texts):
    import onnx

    from l2v.quantize import graph

    modules = {n.name: mod for n, mod in graph.linear_matmuls(graph.load(artifact / "model.onnx"))}
    entry = quantize_artifact(artifact, ["w4:name=w4-mix,keep_8bit=self_attn+layers.1.mlp.down_proj"],
                              calib=texts[0], eval=texts[1], speed=False)["w4-mix"]
    model = onnx.load(str(artifact / entry.main.path))
    bits = {modules[n.name.rsplit("_Q", 1)[0]]: next(a.i for a in n.attribute if a.name == "bits")
            for n in model.graph.node if n.op_type == "MatMulNBits"}
    eight = sorted(n for n, b in bits.items() if b == 8)
    assert len(bits) == 14 and len(eight) == entry.facts["kept_8bit"] == 9  # 2 layers x q/k/v/o + one down_proj
    assert all("self_attn" in n or n.endswith("layers.1.mlp.down_proj") for n in eight), eight
    assert entry.gate["mean_cosine"] > 0.9


def test_config_json_round_trip():
    for spec in TABLE:
        cfg = parse_method(spec)
        back = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert back == cfg and back.to_dict()["version"] == 1


@pytest.mark.parametrize("bad", ["nope", "w4:bits=3", "w4:block_size=7", "int8-smooth:alpha=2",
                                 "w4:colour=red", "int8-smooth:kernel=magic", "w8:algorithm=hqq",
                                 "int8-smooth:kernel=nbits,outlier_channels=4", "int8-smooth:outlier_channels=-1",
                                 "auto:outlier_channels=x", "w8:keep_8bit=self_attn",
                                 "auto:kernels=integer", "ov-int8:mode=fast", "ov-int8:smoothquant_alpha=0",
                                 "ov-int8:preset=fast", "ov-int8:max_drop=0.1", "ov-int8:mode=accuracy,max_drop=2",
                                 "ov-int8:keep_sensitive=-1", "ov-int8:ranking_batches=0",
                                 "ov-int8:quantize_attention=maybe", "ov-int8:mode=weights,quantize_attention=true",
                                 "int8-smooth:fused=maybe", "int8-smooth:kernel=nbits,reduce_range=true"])
def test_bad_specs_are_input_errors(bad):
    with pytest.raises(InputError) as e:
        parse_method(bad)
    assert "\n" not in str(e.value)


def test_a_stored_int8_smooth_config_without_the_newer_fields_reads_back_as_what_was_built():
    """Configs written before `fused` / `reduce_range` existed hold the standard-op graph with 8-bit weights."""
    d = parse_method("int8-smooth").to_dict()
    assert config_from_dict(d).fused is True  # written now: the fused default, kept
    old = {k: v for k, v in d.items() if k not in ("fused", "reduce_range")}
    back = config_from_dict(old)
    assert back.fused is False and back.reduce_range is False


def test_config_from_dict_refuses_other_versions():
    d = parse_method("w4").to_dict()
    with pytest.raises(InputError):
        config_from_dict({**d, "version": 99})


def test_gate_refuses_and_leaves_nothing(artifact, texts):
    from l2v.cli.quantize import main

    before = sorted(p.name for p in artifact.iterdir())
    manifest = (artifact / "l2v.json").read_text()
    calib, ev = (artifact.parent / "calib.txt"), (artifact.parent / "eval.txt")
    calib.write_text("\n".join(texts[0]))
    ev.write_text("\n".join(texts[1]))
    # naive per-tensor int8 on a random tiny model cannot reach recall@10 = 1.0
    code = main([str(artifact), "--quant", "int8-dynamic", "--quant", "w4:algorithm=rtn", "--min-recall", "1.0",
                 "--calib", str(calib), "--eval", str(ev), "--no-speed", "--quiet"])
    assert code == 3
    assert sorted(p.name for p in artifact.iterdir()) == before
    assert (artifact / "l2v.json").read_text() == manifest


def test_existing_variant_needs_overwrite(artifact, texts):
    quantize_artifact(artifact, ["w8"], calib=texts[0], eval=texts[1], speed=False)
    with pytest.raises(L2VError, match="already exist"):
        quantize_artifact(artifact, ["w8"], calib=texts[0], eval=texts[1], speed=False)
    quantize_artifact(artifact, ["w8"], calib=texts[0], eval=texts[1], speed=False, overwrite=True)


def test_calibration_texts_are_real_and_disjoint():
    from l2v.quantize.texts import default_calibration_texts, default_eval_texts

    c, e = default_calibration_texts(), default_eval_texts()
    assert len(c) >= 100 and len(e) >= 100 and not set(c) & set(e)
    assert all(len(t.split()) >= 8 for t in c[:50])


def test_bnb_without_bitsandbytes_names_the_install(monkeypatch):
    import sys

    from l2v.errors import OptionalDependencyError
    from l2v.runtime.bnb import import_bnb

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'l2v-export\[bnb\]'"):
        import_bnb()


@pytest.mark.gpu
def test_bnb_variants_on_cuda(artifact, texts):
    pytest.importorskip("bitsandbytes")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    import l2v

    quantize_artifact(artifact, ["bnb-int8", "bnb-nf4"], calib=texts[0], eval=texts[1], speed=False)
    for v in ("bnb-int8", "bnb-nf4"):
        assert l2v.load(artifact, variant=v, device="cuda").encode(["hello there"]).shape == (1, 64)


def test_export_cli_gate_refusal_leaves_no_artifact(tiny_artifact, tmp_path, texts):
    from l2v.cli.export import main

    calib, ev = tmp_path / "calib.txt", tmp_path / "eval.jsonl"
    calib.write_text("\n".join(texts[0]))
    ev.write_text("\n".join(json.dumps({"text": t}) for t in texts[1]))
    out = tmp_path / "refused"
    code = main([str(tiny_artifact.parent / "hf"), "--out", str(out), "--quant", "int8-dynamic",
                 "--min-recall", "1.0", "--calib", str(calib), "--eval", str(ev), "--quiet"])
    assert code == 3
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".refused")]


def test_auto_choice_between_kernels(monkeypatch, tmp_path):
    from l2v.quantize import auto

    p = tmp_path / "g.onnx"
    tried = {"token": {0: (0.90, p, {}), 6: (0.951, p, {}), 8: (0.97, p, {})},
             "nbits": {0: (0.956, p, {})}}
    monkeypatch.setattr(auto, "_fastest", lambda ctx, paths: {"token": 6280.0, "nbits": 8034.0})
    assert auto._choose(None, tried, 0.95)[:2] == ("token", 6)  # both pass: the faster one
    monkeypatch.setattr(auto, "_fastest", lambda ctx, paths: {"token": 9000.0, "nbits": 8034.0})
    assert auto._choose(None, tried, 0.95)[:2] == ("nbits", 0)
    assert auto._choose(None, tried, 0.96) == ("token", 8, {})  # only one passes: no timing needed
    assert auto._choose(None, tried, 0.99) == ("token", 8, {})  # none passes: the most faithful


def test_export_quantizes_from_the_model_in_memory(tiny_artifact, tmp_path, texts):
    """Calibration uses the model export already holds: no torch/ weights needed on disk."""
    import l2v
    from l2v.artifact import read_manifest

    out = l2v.export_model(str(tiny_artifact.parent / "hf"), tmp_path / "a", torch_weights=False,
                           quant=["int8-smooth:keep_sensitive=1"], calib=texts[0], eval=texts[1], progress=False)
    m = read_manifest(out)
    assert "torch" not in m.variants and m.variants["int8-smooth"].kind == "onnx"
    assert m.variants["int8-smooth"].gate["reference"] == "fp32"
    assert l2v.load(out, variant="int8-smooth").encode(["a text"]).shape == (1, 64)


def test_weight_only_rtn_and_hqq_need_no_model_but_awq_does():
    """w8/w4 with rtn or hqq read the weights alone, so they apply to artifacts without torch/ weights (a
    streamed 8B export); awq and int8-smooth look at activations and are refused there, before any I/O."""
    from l2v.quantize.plan import plan_quantization

    plan = plan_quantization(["w8", "w4", "w4:algorithm=rtn,name=w4-rtn"], model_available=False)
    assert plan.names == ["w8", "w4", "w4-rtn"] and plan.calib_texts == []
    for spec in ("w4:algorithm=awq", "int8-smooth"):
        with pytest.raises(InputError, match=f"--quant {spec.split(':')[0]} calibrates on the PyTorch model"):
            plan_quantization([spec], model_available=False)
    assert plan_quantization(["w4:algorithm=awq"]).calib_texts  # with a model: calibration texts resolved
