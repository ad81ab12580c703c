"""fp32 attention scores inside 16-bit graphs (l2v.model.precision): what the context manager changes, that it
restores everything, and the fp16 graphs of a Qwen2 (q/k biases) computing q/k in fp32 on both export paths.
The accuracy it buys is measured on real weights (Qwen2.5-Coder-1.5B): bench/results/fp16_scores.md."""
import copy
import json

import onnx
import pytest
import torch
from tiny import make_backbone, save_model_dir

import l2v
from l2v.model.encoder import EmbeddingModel
from l2v.model.precision import PREFIX, fp32_scores

IDS = torch.tensor([[1, 5, 6, 7, 9, 11], [1, 8, 9, 2, 0, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])


def _fp16_encoder(arch: str):
    enc = EmbeddingModel(make_backbone(arch, "sdpa")).eval()
    return enc, copy.deepcopy(enc).half()


def test_qwen2_q_k_and_scores_run_in_fp32_inside_and_everything_is_restored_after():
    ref, enc = _fp16_encoder("qwen2")
    seen = []
    attn = enc.backbone.layers[0].self_attn
    hook = attn.k_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.no_grad():
        before = enc(IDS, MASK, MASK)
        with fp32_scores(enc, "fp16") as on:
            assert on and enc.config._attn_implementation == PREFIX + "sdpa"
            inside = enc(IDS, MASK, MASK)
        after = enc(IDS, MASK, MASK)
        exact = ref(IDS, MASK, MASK)
    hook.remove()
    assert seen == [torch.float16, torch.float32, torch.float16]
    assert "forward" not in vars(attn.q_proj) and "forward" not in vars(attn.k_proj)
    assert enc.config._attn_implementation == "sdpa" and torch.equal(before, after)
    assert attn.q_proj.weight.dtype == torch.float16  # the weights stay 16-bit
    assert torch.nn.functional.cosine_similarity(inside, exact).min() > 0.9999


@pytest.mark.parametrize("arch, dtype", [("llama", "fp16"), ("qwen2", "fp32")])
def test_other_architectures_and_fp32_are_left_alone(arch, dtype):
    _, enc = _fp16_encoder(arch)
    with fp32_scores(enc, dtype) as on:
        assert not on and enc.config._attn_implementation == "sdpa"
        assert "forward" not in vars(enc.backbone.layers[0].self_attn.q_proj)


@pytest.fixture(scope="module")
def qwen2_art(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen2_16bit")
    base = save_model_dir(root / "base", "qwen2")
    return l2v.export_model(str(base), root / "a", dtype="fp32,fp16,bf16", stream="off", max_length=64,
                            progress=False)


def test_in_memory_16bit_graphs_of_qwen2_have_fp32_q_k_projections(qwen2_art):
    out = qwen2_art
    variants = json.loads((out / "l2v.json").read_text())["variants"]
    assert list(variants) == ["fp32", "fp16", "bf16", "torch"] and not (out / ".scratch").exists()
    v = variants["fp16"]
    assert v["facts"]["attention_scores"].startswith("fp32") and v["validation"]["min_cosine"] >= 0.999
    assert variants["bf16"]["facts"]["attention_scores"].startswith("fp32")
    assert variants["bf16"]["validation"]["min_cosine"] >= 0.99
    g = onnx.load(str(out / "model_fp16.onnx")).graph
    inits = {i.name: i.data_type for i in g.initializer}
    b_types = [inits[n.input[1]] for n in g.node if n.op_type == "MatMul" and n.input[1] in inits]
    layers = 2
    assert b_types.count(onnx.TensorProto.FLOAT) == 2 * layers  # q and k
    assert b_types.count(onnx.TensorProto.FLOAT16) == 5 * layers  # v, o, gate, up, down


def test_trt_fp16_graph_of_qwen2_keeps_q_k_and_scores_in_fp32(qwen2_art):
    """The strongly typed TensorRT graph (trt-fp16's, l2v.quantize.trt_typed) gets the same island: the q/k
    projection MatMuls and the score MatMuls fp32, the other projections fp16; it runs on ONNX Runtime and
    agrees with the fp32 graph."""
    import numpy as np

    from l2v.quantize.graph import linear_matmuls
    from l2v.quantize.trt_graph import simplify
    from l2v.quantize.trt_typed import classify, consistency_errors, to_strongly_typed
    from l2v.runtime.onnx import session

    model, _ = simplify(onnx.load(str(qwen2_art / "model.onnx")))
    classes = classify(model, fp32_scores=True)
    proj = {mod.rsplit(".", 1)[-1]: classes[n.name] for n, mod in linear_matmuls(model)}
    assert proj == {"q_proj": "fp32:scores", "k_proj": "fp32:scores", "v_proj": "low", "o_proj": "low",
                    "gate_proj": "low", "up_proj": "low", "down_proj": "low"}
    inits = {i.name for i in model.graph.initializer}
    scores = [n for n in model.graph.node if n.op_type == "MatMul" and not set(n.input) & inits]
    assert [classes[n.name] for n in scores].count("fp32:scores") == 2  # QK^T per layer (PV stays low)
    assert classify(model)[scores[0].name] == "low"  # without the flag: today's graph
    typed, facts = to_strongly_typed(model, "fp16", classes)
    assert consistency_errors(typed) == [] and facts["node_classes"]["fp32:scores"] > 4
    feeds = {"input_ids": np.array([[1, 5, 6, 7, 9]]), "attention_mask": np.ones((1, 5), np.int64)}
    feeds["pooling_mask"] = feeds["attention_mask"]
    ref = session(str(qwen2_art / "model.onnx")).run(None, feeds)[0]
    got = session(typed.SerializeToString()).run(None, feeds)[0]
    assert float(np.sum(ref * got) / np.linalg.norm(ref) / np.linalg.norm(got)) > 0.999
