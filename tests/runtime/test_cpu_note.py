"""The load-time note for an int8 variant gated where ONNX Runtime's u8 x s8 GEMM is exact (VNNI) and run
where it saturates (x86 without VNNI): l2v.runtime.cpu. The saturation itself is measured by
bench/u8s8_saturation.py and asserted (7-bit weights exact) in tests/quantize/test_outliers.py."""
import json
import shutil
import warnings

import pytest

import l2v
from l2v.artifact import Variant
from l2v.runtime import cpu

U8S8 = {"quant_ops": {"MatMulIntegerToFloat": 14, "QuantizeLinear": 8}}


def _variant(gated_on, quant=None, facts=U8S8):
    return Variant("onnx", "int8", facts=facts, quant=quant, gate={"recall@10": 0.97, "cpu": {"int8_gemm": gated_on}})


def test_the_flags_decide_the_int8_gemm(monkeypatch):
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    assert cpu.int8_gemm({"avx2", "fma"}) == cpu.SATURATING
    assert cpu.int8_gemm({"avx2", "avx512_vnni"}) == cpu.EXACT == cpu.int8_gemm({"avx2", "avx_vnni"})
    monkeypatch.setattr(cpu.platform, "machine", lambda: "aarch64")
    assert cpu.int8_gemm({"asimd"}) is None


def test_the_flags_decide_bf16_arithmetic():
    assert cpu.bf16_arithmetic({"avx512f", "avx512_bf16"}) and cpu.bf16_arithmetic({"amx_bf16"})
    assert not cpu.bf16_arithmetic({"avx512f", "avx512_vnni"}) and not cpu.bf16_arithmetic(set())


def test_note_only_for_8bit_u8s8_weights_gated_elsewhere():
    note = cpu.saturation_note("int8-smooth", _variant(cpu.EXACT), here=cpu.SATURATING)
    assert "'int8-smooth' was gated on a CPU whose int8 GEMM is exact" in note and "reduce_range=true" in note
    assert "recall@10 0.97" in note
    quiet = [_variant(cpu.SATURATING), _variant(None), _variant(cpu.EXACT, quant={"reduce_range": True}),
             _variant(cpu.EXACT, facts={"quant_ops": {"MatMulNBits": 14}})]
    assert [cpu.saturation_note("v", v, here=cpu.SATURATING) for v in quiet] == [None] * 4
    assert cpu.saturation_note("v", _variant(cpu.EXACT), here=cpu.EXACT) is None


def test_load_notes_a_variant_gated_where_the_gemm_is_exact(tiny_llama_artifact, tmp_path, monkeypatch):
    """A real int8-dynamic variant whose gate says it ran on a VNNI CPU, loaded 'here' without VNNI."""
    from l2v.quantize import quantize_artifact

    art = shutil.copytree(tiny_llama_artifact, tmp_path / "a")
    quantize_artifact(art, ["int8-dynamic"], speed=False)
    path = art / "l2v.json"
    m = json.loads(path.read_text())
    gate = m["variants"]["int8-dynamic"]["gate"]
    assert gate["cpu"]["int8_gemm"] == cpu.int8_gemm() and gate["cpu"]["name"]  # the gate says where it ran
    gate["cpu"]["int8_gemm"] = cpu.EXACT
    path.write_text(json.dumps(m))
    monkeypatch.setattr(cpu, "int8_gemm", lambda flags=None: cpu.SATURATING)
    with pytest.warns(RuntimeWarning, match="'int8-dynamic' was gated on a CPU whose int8 GEMM is exact"):
        enc = l2v.load(art, variant="int8-dynamic")
    assert enc.encode(["a text"]).shape[0] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        l2v.load(art)  # the fp32 default: nothing to say


def test_plugin_note_when_the_precisions_differ():
    built = {"FullyConnected:i8": 182, "FullyConnected:f32": 28}
    v = Variant("openvino", "int8", facts={"runtime_precisions": built},
                gate={"recall@10": 0.95, "cpu": {"name": "CPU A", "int8_gemm": cpu.EXACT}})
    here = {"FullyConnected:f32": 210}
    note = cpu.plugin_note("ov-int8", v, here, cpu.EXACT)
    assert "'ov-int8' was gated on CPU A (recall@10 0.95)" in note and str(built) in note and str(here) in note
    assert "Rebuild it here" in note
    assert cpu.plugin_note("v", v, dict(built), cpu.EXACT) is None  # same precisions
    assert cpu.plugin_note("v", v, None, cpu.EXACT) is None  # the runtime does not decide per CPU
    assert cpu.plugin_note("v", Variant("openvino", "fp32", facts={}), here, cpu.EXACT) is None  # nothing recorded


def test_plugin_note_for_int8_weights_gated_without_vnni():
    """ov-int8:mode=weights gated where the plugin computes in fp32 (no VNNI), loaded where it quantizes the
    activations (VNNI): noted even when the reported precisions agree; the other directions are not."""
    same = {"FullyConnected:i8": 14}

    def variant(gated_on, mode="weights"):
        return Variant("openvino", "int8", facts={"runtime_precisions": same}, quant={"method": "ov-int8", "mode": mode},
                       gate={"recall@10": 0.96, "cpu": {"name": "old box", "int8_gemm": gated_on}})

    note = cpu.plugin_note("ov-int8-w", variant(cpu.SATURATING), dict(same), cpu.EXACT)
    assert "gated without VNNI" in note and "groups of 32" in note and "recall@10 0.96" in note
    assert cpu.plugin_note("v", variant(cpu.EXACT), dict(same), cpu.SATURATING) is None
    assert cpu.plugin_note("v", variant(cpu.SATURATING), dict(same), cpu.SATURATING) is None
    assert cpu.plugin_note("v", variant(cpu.SATURATING, mode="ptq"), dict(same), cpu.EXACT) is None


def test_no_vnni_note_when_the_variant_turned_run_time_int8_off():
    """dynamic_group=0 (recorded as facts.plugin) means the plugin never quantizes the activations, with or
    without VNNI: the same vectors on both CPUs, so no note; any other recorded group size is still noted."""
    same = {"FullyConnected:u8": 14}

    def variant(group):
        return Variant("openvino", "int8", facts={"runtime_precisions": same,
                                                  "plugin": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": group}},
                       quant={"method": "ov-int8", "mode": "weights"},
                       gate={"recall@10": 0.96, "cpu": {"name": "old box", "int8_gemm": cpu.SATURATING}})

    assert cpu.plugin_note("v", variant(0), dict(same), cpu.EXACT) is None
    assert "gated without VNNI" in cpu.plugin_note("v", variant(64), dict(same), cpu.EXACT)
