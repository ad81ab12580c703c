"""LLM2Vec's usual loading merges the MNTP adapter and keeps the second (SimCSE / supervised) adapter
unmerged (`LLM2Vec.from_pretrained(..., peft_model_name_or_path=..., merge_peft=False)`, llm2vec.py
L116-129). The artifact merges both by default (manifest `adapters_merged: true`), or, with
`--keep-last-adapter-unmerged` (`unmerged_last=True`), keeps the last as a LoRA side branch in the graph and
in torch/ (manifest `applied: "unmerged"`). This measures that the two differ by rounding only, in fp32, on
a tiny model with two random adapters (bench/text_presets.py --merge-check measures SmolLM2 in fp32 and
bf16), in PyTorch and through exported artifacts."""
import json

import numpy as np
import pytest
import torch

import l2v
from helpers_adapters import llm2vec_adapters
from l2v.errors import InputError
from l2v.model.adapters import merge_adapters
from l2v.model.encoder import EmbeddingModel
from l2v.text import Preprocessor
from l2v.text.presets import build_text_spec
from tiny import save_model_dir


def test_second_adapter_unmerged_equals_merged_to_rounding(tmp_path, tok):
    from peft import PeftModel
    from transformers import AutoModel

    base = save_model_dir(tmp_path / "base", "llama")
    mntp, sup = llm2vec_adapters(base, tmp_path)
    merged, _ = merge_adapters(AutoModel.from_pretrained(str(base)), [str(mntp), str(sup)])
    half, _ = merge_adapters(AutoModel.from_pretrained(str(base)), [str(mntp)])
    pre = Preprocessor(tok, build_text_spec("llm2vec", "mean", 512))
    batch = pre.batch(["The quick brown fox jumps over the lazy dog.", ("Retrieve news", "Embedding models.")])
    t = {k: torch.from_numpy(v) for k, v in batch.items()}
    with torch.no_grad():
        c = EmbeddingModel(half, "mean")(**t).numpy()  # before peft injects the second adapter in place
        unmerged = PeftModel.from_pretrained(half, str(sup)).get_base_model().eval()
        assert any("lora_A" in n for n, _ in unmerged.named_parameters())  # really unmerged
        a = EmbeddingModel(merged, "mean")(**t).numpy()
        b = EmbeddingModel(unmerged, "mean")(**t).numpy()
    scale = np.abs(a).max()
    assert np.abs(a - b).max() <= 1e-5 * scale  # rounding only
    assert np.abs(a - c).max() > 1e-2 * scale  # while the second adapter itself matters


TEXTS = ["The quick brown fox jumps over the lazy dog.", "Embedding models map text to vectors.", "short", "",
         "Padding tokens must never change the embedding of a real token, whatever the batch holds."]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Base + MNTP + second adapter (LoRA dropout 0.1: must be inactive), exported merged and unmerged."""
    root = tmp_path_factory.mktemp("unmerged")
    base = save_model_dir(root / "base", "llama")
    mntp, sup = llm2vec_adapters(base, root)
    cfg = json.loads((sup / "adapter_config.json").read_text())
    (sup / "adapter_config.json").write_text(json.dumps({**cfg, "lora_dropout": 0.1}))
    adapters = [str(mntp), str(sup)]
    merged = l2v.export_model(str(base), root / "merged", adapters=adapters, progress=False)
    unmerged = l2v.export_model(str(base), root / "unmerged", adapters=adapters, unmerged_last=True, progress=False)
    return root, base, mntp, sup, merged, unmerged


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_unmerged_export_equals_merged_to_rounding(exports):
    from transformers import AutoModel

    root, base, mntp, sup, merged, unmerged = exports
    for art in (merged, unmerged):
        assert l2v.load(art).manifest.variants["fp32"].validation["min_cosine"] >= 0.99999
    ref = l2v.load(merged).encode(TEXTS)
    torch_unmerged = l2v.load(unmerged, backend="torch")
    assert any("lora_A" in n for n, _ in torch_unmerged.backend.model.named_parameters())  # applied at load
    got = {"onnx": l2v.load(unmerged).encode(TEXTS), "torch": torch_unmerged.encode(TEXTS),
           "packed": l2v.load(unmerged, backend="torch", engine="packed").encode(TEXTS),
           "merged torch": l2v.load(merged, backend="torch").encode(TEXTS)}
    for name, v in got.items():
        assert np.abs(v - ref).max() <= 1e-4 and _cos(v, ref).min() >= 0.99999, name
    # the second adapter matters: without it the vectors are clearly elsewhere
    half, _ = merge_adapters(AutoModel.from_pretrained(str(base)), [str(mntp)])
    enc = l2v.load(merged)
    with torch.no_grad():
        b = {k: torch.from_numpy(v) for k, v in enc.preprocessor.batch(TEXTS).items()}
        without = EmbeddingModel(half, enc.manifest.graph.pooling)(**b).numpy()
    assert _cos(without, ref).max() < 0.999


def test_unmerged_graph_holds_the_lora_branch(exports):
    import onnx

    def matmuls(art):
        return sum(n.op_type == "MatMul" for n in onnx.load(str(art / "model.onnx")).graph.node)

    *_, merged, unmerged = exports
    assert matmuls(unmerged) > matmuls(merged)


def test_manifest_and_torch_dir_record_the_unmerged_adapter(exports):
    from safetensors.torch import load_file

    root, base, mntp, sup, merged, unmerged = exports
    m, u = l2v.load(merged).manifest, l2v.load(unmerged).manifest
    assert [a.applied for a in m.adapters] == ["merged", "merged"] and m.adapters_merged is True
    assert [a.applied for a in u.adapters] == ["merged", "unmerged"] and u.adapters_merged is False
    assert "adapter_dir" not in m.variants["torch"].facts and u.variants["torch"].facts["adapter_dir"] == "torch/adapter"
    assert {"torch/adapter/adapter_config.json", "torch/adapter/adapter_model.safetensors"} <= {
        r.path for r in u.variants["torch"].files}
    kept = unmerged / "torch" / "adapter"
    assert (kept / "adapter_model.safetensors").read_bytes() == (sup / "adapter_model.safetensors").read_bytes()
    assert json.loads((kept / "adapter_config.json").read_text())["peft_type"] == "LORA"
    weights = load_file(str(unmerged / "torch" / "model.safetensors"))  # base + MNTP only, plain names
    assert not [k for k in weights if "lora_" in k or "base_layer" in k]
    assert set(weights) == set(load_file(str(merged / "torch" / "model.safetensors")))


def test_quantize_refuses_an_unmerged_artifact(exports, tmp_path):
    from l2v.quantize import quantize_artifact

    root, base, mntp, sup, merged, unmerged = exports
    before = (unmerged / "l2v.json").read_text()
    with pytest.raises(InputError, match=r"keeps its last adapter unmerged; quantize a merged export "
                                         r"\(drop --keep-last-adapter-unmerged\)"):
        quantize_artifact(unmerged, ["int8-dynamic"])
    assert (unmerged / "l2v.json").read_text() == before
    with pytest.raises(InputError, match="--quant/--trt cannot be combined with --keep-last-adapter-unmerged"):
        l2v.export_model(str(base), tmp_path / "q", adapters=[str(mntp), str(sup)], unmerged_last=True,
                         quant=["int8-dynamic"], progress=False)
    assert not (tmp_path / "q").exists()
