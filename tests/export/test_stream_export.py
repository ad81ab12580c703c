"""The streamed export (fake-tensor graph, weights streamed into external data, layer-by-layer reference,
ORT validation in a child process) against the in-memory export, and the resource plan's refusals."""
import json
import shutil

import numpy as np
import onnx
import pytest

import l2v
from l2v.errors import ResourceError
from l2v.quantize import quantize_artifact

TEXTS = ["A short one.", "The quick brown fox jumps over the lazy dog, twice, for good measure.",
         "Embedding models map text to vectors.", "x"]


@pytest.fixture(scope="module")
def pair(synth, tmp_path_factory):
    """tiny-llama (bf16, sharded) + MNTP + supervised adapters, exported both ways (fp32)."""
    base, adapters = synth["tiny-llama"]
    root = tmp_path_factory.mktemp("stream")
    kw = dict(adapters=[str(a) for a in adapters], progress=False)
    streamed = l2v.export_model(str(base), root / "streamed", stream="on", torch_weights=True, dtype="fp32,bf16", **kw)
    memory = l2v.export_model(str(base), root / "memory", stream="off", torch_weights=False, **kw)
    return base, adapters, streamed, memory


def test_streamed_fp32_export_equals_in_memory_export_bitwise(pair):
    _, _, streamed, memory = pair
    a = l2v.load(streamed).encode(TEXTS, batch_size=2)
    b = l2v.load(memory).encode(TEXTS, batch_size=2)
    assert np.array_equal(a, b), np.abs(a - b).max()
    m = json.loads((streamed / "l2v.json").read_text())
    fp32 = m["variants"]["fp32"]
    assert [f["path"] for f in fp32["files"]] == ["model.onnx", "model.onnx.data"]
    assert fp32["facts"]["export"] == "streamed" and fp32["validation"]["min_cosine"] >= 0.99999
    assert fp32["validation"]["ort"]["peak_rss_gib"] > 0  # the ORT child's own peak, measured
    assert fp32["validation"]["ort"]["session"] == "low-memory"  # weights mapped, not folded to fp32 copies
    assert m["timings"]["resource_plan"]["path"] == "stream"
    assert [a["applied"] for a in m["adapters"]] == ["merged", "merged"]


def test_streamed_bf16_graph_is_checked_and_says_how(pair):
    """ORT's CPU provider has no bf16 kernels: without CUDA the bf16 graph is checked as fp32 with its bf16
    weights, and the manifest says so."""
    import onnx

    from l2v.export.bf16 import CHECK_CPU, cuda_available

    streamed = pair[2]
    m = json.loads((streamed / "l2v.json").read_text())
    v = m["variants"]["bf16"]
    assert m["default_variant"] == "fp32" and v["validation"]["min_cosine"] >= 0.99
    if not cuda_available():
        assert v["validation"]["check"] == CHECK_CPU
    g = onnx.load(str(streamed / "model_bf16.onnx"), load_external_data=False).graph
    weights = [i for i in g.initializer if len(i.dims) == 2]
    assert weights and {i.data_type for i in weights} == {onnx.TensorProto.BFLOAT16}
    assert not list(streamed.glob(".bf16-check*")) and not list(streamed.glob(".l2v-ort-*"))


def test_streamed_torch_copy_is_opt_in_and_loads(pair):
    _, _, streamed, memory = pair
    m = json.loads((streamed / "l2v.json").read_text())
    assert m["variants"]["torch"]["dtype"] == "fp32"
    a = l2v.load(streamed).encode(TEXTS)
    b = l2v.load(streamed, backend="torch").encode(TEXTS)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99999
    assert "torch" not in json.loads((memory / "l2v.json").read_text())["variants"]


@pytest.mark.parametrize("shape", ["tiny-llama", "tiny-qwen2"])
def test_layerwise_reference_equals_the_in_memory_model(synth, shape):
    """One decoder layer in memory at a time, and the same bits as the whole merged model's forward."""
    from l2v.export.write import torch_reference
    from l2v.model.adapters import merge_adapters
    from l2v.model.checkpoint import open_weights
    from l2v.model.encoder import EmbeddingModel
    from l2v.model.layerwise import LayerwiseModel
    from l2v.model.load import load, load_config
    from l2v.model.merge import MergedWeights
    from l2v.model.source import resolve_model

    base, adapters = synth[shape]
    adapters = [str(a) for a in adapters]
    source = resolve_model(str(base))
    config = load_config(source)
    loaded = load(source, "fp32", adapters)
    encoder = EmbeddingModel(merge_adapters(loaded.model, adapters)[0], "mean").eval()
    batches = [{"input_ids": np.array([[1, 50, 60, 70, 80], [1, 90, 91, 2, 2]]),
                "attention_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])},
               {"input_ids": np.array([[1, 7, 300]]), "attention_mask": np.array([[1, 1, 1]])}]
    for b in batches:
        b["pooling_mask"] = b["attention_mask"].copy()
    ref = torch_reference(encoder, batches)
    layerwise = LayerwiseModel(config, MergedWeights(open_weights(source, config), adapters), "mean")
    got = layerwise.run(batches)
    assert np.array_equal(got, ref), np.abs(got - ref).max()
    assert all(p.device.type == "meta" for layer in layerwise.layers for p in layer.parameters())


def test_fp16_alone_is_the_only_graph_and_the_default(synth, tmp_path):
    base, adapters = synth["tiny-qwen2"]
    """...and the w4 variant quantized at export (layer-streamed, from the fp16 weights) is gated against it."""
    out = l2v.export_model(str(base), tmp_path / "a", adapters=[str(adapters[0])], dtype="fp16", stream="on",
                           quant=["w4"], progress=False)
    m = json.loads((out / "l2v.json").read_text())
    assert list(m["variants"]) == ["fp16", "w4"] and m["default_variant"] == "fp16"
    assert m["variants"]["fp16"]["validation"]["min_cosine"] >= 0.999
    # Qwen2 (q/k biases): q/k projections read their fp16 weights through a Cast and compute in fp32
    assert m["variants"]["fp16"]["facts"]["attention_scores"].startswith("fp32")
    g16 = onnx.load(str(out / "model_fp16.onnx"), load_external_data=False).graph
    made = {n.output[0]: n for n in g16.node}
    casts = [made.get(n.input[1]) for n in g16.node if n.op_type == "MatMul"]
    cast_in = sorted(c.input[0].split(".")[-2] for c in casts if c is not None and c.op_type == "Cast")
    assert cast_in == ["k_proj"] * 2 + ["q_proj"] * 2
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("model")) == [
        "model_fp16.onnx", "model_fp16.onnx.data", "model_w4.onnx", "model_w4.onnx.data"]
    assert l2v.load(out).encode(TEXTS).shape == (len(TEXTS), 64)
    low = l2v.load(out, low_memory=True)
    assert low.backend.low_memory and not l2v.load(out).backend.low_memory  # tiny: the fp32 fold fits
    np.testing.assert_allclose(low.encode(TEXTS), l2v.load(out).encode(TEXTS), atol=2e-3)
    w4 = m["variants"]["w4"]
    assert w4["gate"]["reference"] == "fp16" and w4["facts"]["streamed"] and w4["gate"]["mean_cosine"] > 0.9
    # every graph of the gate runs in an ONNX Runtime child, low-memory (the fp16 reference is never folded into
    # fp32: ~30 GB at 8B; its mapped weights never add to the exporting process), and the child times it
    assert w4["gate"]["session"] == "low-memory, child process"
    assert 0 < w4["gate"]["ort"]["peak_rss_gib"] < 2 and w4["gate"]["ort"]["after_run_gib"]["anon"] > 0
    assert "speed" not in w4["gate"]  # export does not time streamed graphs (timing maps every weight)
    assert l2v.load(out, variant="w4").encode(TEXTS).shape == (len(TEXTS), 64)


def test_streamed_w8_of_an_fp16_graph_is_right_in_the_low_memory_session(synth, tmp_path):
    """int8 activations (accuracy_level 4) of an fp16 graph run MatMulNBits on fp32 inputs (Casts in and out):
    with fp16 inputs ORT's CPU kernel gave wrong vectors in the low-memory session the gate uses for
    streamed artifacts (mean cosine 0.983 here, 0.25 on a 1024-wide 2-layer Llama; 0.9998 with the Casts)."""
    base, _ = synth["tiny-llama"]
    out = l2v.export_model(str(base), tmp_path / "a", dtype="fp16", stream="on", quant=["w8"], progress=False,
                           max_length=64)
    m = json.loads((out / "l2v.json").read_text())
    assert m["variants"]["w8"]["gate"]["session"] == "low-memory, child process"
    assert m["variants"]["w8"]["gate"]["mean_cosine"] >= 0.999, m["variants"]["w8"]["gate"]
    g = onnx.load(str(out / "model_w8.onnx"), load_external_data=False).graph
    made = {n.output[0]: n for n in g.node}
    nbits = [n for n in g.node if n.op_type == "MatMulNBits"]
    assert nbits and all(made[n.input[0]].op_type == "Cast" for n in nbits)
    ref = l2v.load(out, low_memory=True).encode(TEXTS)
    for low in (True, False):
        got = l2v.load(out, variant="w8", low_memory=low).encode(TEXTS)
        assert (np.sum(ref * got, 1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)).min() >= 0.999


def test_not_enough_disk_is_refused_before_writing(synth, tmp_path, monkeypatch):
    from l2v.export import resources

    base, _ = synth["tiny-llama"]
    monkeypatch.setattr(resources, "free_disk", lambda path: 1000)
    with pytest.raises(ResourceError, match=r"the artifact needs \d+\.\d GB in .+, 0\.0 GB free"):
        l2v.export_model(str(base), tmp_path / "a", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_plan_over_max_memory_is_refused_before_writing(synth, tmp_path):
    base, _ = synth["tiny-llama"]
    with pytest.raises(ResourceError, match=r"needs about .* GiB of memory at '.+', more than the 0\.01 GiB"):
        l2v.export_model(str(base), tmp_path / "a", progress=False, stream="on", max_memory_gb=0.01)
    assert list(tmp_path.iterdir()) == []


def test_memory_plan_of_an_8b_shape():
    """Llama-3-8B's shapes (no weights): streamed, ~16 GB of fp16 graph; ORT runs a chunk of weights at a time,
    so the peak is the layer-by-layer reference and no stage grows with the graph."""
    from transformers import LlamaConfig

    from l2v.export.resources import Shapes, memory_stages

    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                      vocab_size=128256, num_hidden_layers=32)
    shapes = Shapes.of(cfg)
    assert 7.4e9 < shapes.params < 7.6e9
    from l2v.quantize.config import Int8SmoothConfig, W8Config

    plain = dict(memory_stages(shapes, ["fp16"], [W8Config()], n_tokens=4096))
    assert max(plain, key=plain.get) == "PyTorch reference, layer by layer"
    stages = dict(memory_stages(shapes, ["fp16"], [W8Config(), Int8SmoothConfig(calib_texts=16)], n_tokens=4096))
    assert stages["write the fp16 graph"] < 2 * 2**30  # one merged projection, not the model
    assert max(stages, key=stages.get) == "quantize int8-smooth: calibrate and rank layers, one layer at a time"
    # the validation and gate children map one chunk of weights (512 MiB), not the 15 GB graph
    for stage in ("validate fp16 (ONNX Runtime)", "quantize w8: gate (ONNX Runtime child, one graph at a time)",
                  "quantize int8-smooth: gate (ONNX Runtime child, one graph at a time)"):
        assert stages[stage] < 3 * 2**30, (stage, stages[stage])
    assert max(stages.values()) <= (shapes.bytes("fp16") + 2 * 2**30) / 2  # the goal: half the bound


def test_interrupted_streamed_export_leaves_nothing(synth, tmp_path, monkeypatch):
    """Ctrl-C in the middle of writing the weights: no artifact, no temporary directory."""
    from l2v.export import stream_graph

    base, _ = synth["tiny-llama"]
    real = stream_graph.save

    def interrupted(model, path, progress=None):
        def tick(done, total):
            if done == 3:
                raise KeyboardInterrupt
        return real(model, path, progress=tick)

    monkeypatch.setattr(stream_graph, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        l2v.export_model(str(base), tmp_path / "a", stream="on", progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- layer-streamed quantization (l2v.quantize.streamed)
@pytest.fixture(scope="module")
def quant_texts():
    from l2v.quantize.texts import default_calibration_texts, default_eval_texts

    return default_calibration_texts()[:24], default_eval_texts()[:24]


@pytest.fixture(scope="module")
def encoder(pair):
    """The in-memory merged model: what the in-memory handlers calibrate on."""
    from l2v.model.adapters import merge_adapters
    from l2v.model.encoder import EmbeddingModel
    from l2v.model.load import load
    from l2v.model.source import resolve_model

    base, adapters = pair[0], [str(a) for a in pair[1]]
    loaded = load(resolve_model(str(base)), "fp32", adapters)
    return EmbeddingModel(merge_adapters(loaded.model, adapters)[0], "mean").eval()


def _quantize_both(pair, encoder, tmp_path, quant_texts, spec):
    """`spec` on copies of the streamed artifact (external data: layer-streamed, calibrated one decoder layer
    at a time from its torch/ weights) and of the in-memory one (the in-memory handlers)."""
    streamed, memory = pair[2], pair[3]
    s, m = shutil.copytree(streamed, tmp_path / "s"), shutil.copytree(memory, tmp_path / "m")
    quantize_artifact(s, [spec], calib=quant_texts[0], eval=quant_texts[1], speed=False)
    quantize_artifact(m, [spec], calib=quant_texts[0], eval=quant_texts[1], speed=False, torch_model=encoder)
    name = spec.split(":")[0]
    a = l2v.load(s, variant=name).encode(TEXTS)
    b = l2v.load(m, variant=name).encode(TEXTS)
    va = json.loads((s / "l2v.json").read_text())["variants"][name]
    vb = json.loads((m / "l2v.json").read_text())["variants"][name]
    return a, b, va, vb


def test_streamed_w8_equals_the_in_memory_w8(pair, encoder, tmp_path, quant_texts):
    """RTN through ORT's own block quantizer, one weight at a time: the same weights as MatMulNBitsQuantizer."""
    a, b, va, vb = _quantize_both(pair, encoder, tmp_path, quant_texts, "w8:algorithm=rtn")
    assert va["facts"]["streamed"] and va["facts"]["quant_ops"] == {"MatMulNBits": 14} == vb["facts"]["quant_ops"]
    assert [f["path"] for f in va["files"]] == ["model_w8.onnx", "model_w8.onnx.data"]
    assert np.abs(a - b).max() < 1e-5, np.abs(a - b).max()
    assert va["gate"]["recall@10"] == vb["gate"]["recall@10"]


def test_streamed_int8_smooth_equals_the_in_memory_one(pair, encoder, tmp_path, quant_texts):
    """Calibration and the sensitivity ranking one decoder layer at a time pick the same outlier channels
    and the same kept layer as the whole model in memory; the per-token int8 nodes compute the same."""
    a, b, va, vb = _quantize_both(pair, encoder, tmp_path, quant_texts, "int8-smooth:keep_sensitive=1")
    assert va["facts"]["kept_layers"] == vb["facts"]["kept_layers"] and len(va["facts"]["kept_layers"]) == 1
    assert va["facts"]["outlier_channels"] == vb["facts"]["outlier_channels"]
    assert va["facts"]["kept_fp32"] == 7 and va["facts"]["quant_ops"] == vb["facts"]["quant_ops"]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99999, cos


def test_streamed_quantize_refuses_what_it_cannot_do(pair, tmp_path, quant_texts):
    from l2v.errors import InputError

    s = shutil.copytree(pair[2], tmp_path / "s")
    with pytest.raises(InputError, match="not available for streamed"):
        quantize_artifact(s, ["int8-smooth:smoothing=true"], calib=quant_texts[0], eval=quant_texts[1], speed=False)
    assert "int8-smooth" not in json.loads((s / "l2v.json").read_text())["variants"]
