"""Weight sources and the tensor-by-tensor LoRA merge: equal, bitwise, to what the in-memory path loads."""
import json

import pytest
import torch


def _config(path):
    from l2v.model.load import load_config
    from l2v.model.source import resolve_model

    return load_config(resolve_model(str(path)))


@pytest.mark.parametrize("shape", ["tiny-llama", "tiny-qwen2"])
@pytest.mark.parametrize("n_adapters", [0, 1, 2])
def test_streaming_merge_equals_peft(synth, shape, n_adapters):
    from transformers import AutoModel

    from l2v.model.adapters import merge_adapters
    from l2v.model.checkpoint import SafetensorsWeights
    from l2v.model.merge import MergedWeights

    base, adapters = synth[shape]
    adapters = [str(a) for a in adapters[:n_adapters]]
    model = AutoModel.from_pretrained(str(base), dtype=torch.float32)
    merged, _ = merge_adapters(model, adapters)
    ref = merged.state_dict()
    mw = MergedWeights(SafetensorsWeights(base, _config(base)), adapters)
    assert set(mw.names()) == set(ref), set(mw.names()) ^ set(ref)
    changed = 0
    for name, t in mw.items(torch.float32):
        assert t.dtype == torch.float32 and t.shape == ref[name].shape
        assert torch.equal(t, ref[name]), name
        changed += mw.is_merged(name)
    assert changed == (14 if n_adapters else 0)  # 7 projections x 2 layers
    emb = "embed_tokens.weight"
    assert torch.equal(mw.get_rows(emb, 3, 9, torch.float32), ref[emb][3:9])


def test_adapter_for_another_base_is_refused(synth, tmp_path):
    from l2v.errors import AdapterError
    from l2v.model.checkpoint import SafetensorsWeights
    from l2v.model.merge import MergedWeights
    from synthetic import generator

    base, _ = synth["tiny-llama"]
    cfg = json.loads((base / "config.json").read_text())
    cfg["hidden_size"] = 32
    generator().write_adapter(tmp_path / "bad", cfg, base, seed=3, mntp=False)
    with pytest.raises(AdapterError, match="shape"):
        MergedWeights(SafetensorsWeights(base, _config(base)), [str(tmp_path / "bad")])


def test_checkpoint_missing_a_tensor_is_refused(synth, tmp_path):
    from l2v.errors import ModelLoadError
    from l2v.model.checkpoint import SafetensorsWeights

    base, _ = synth["tiny-llama"]
    index = json.loads((base / "model.safetensors.index.json").read_text())
    index["weight_map"].pop("model.norm.weight")
    d = tmp_path / "m"
    d.mkdir()
    for p in base.iterdir():
        (d / p.name).symlink_to(p)
    (d / "model.safetensors.index.json").unlink()
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="norm.weight"):
        SafetensorsWeights(d, _config(base))


@pytest.mark.slow
def test_gguf_tensor_by_tensor_equals_transformers_load():
    """The embedded SmolLM2 GGUF (Q4_1 / Q8_0 blocks): every dequantised tensor equals the whole-model load
    (slow: transformers parses the GGUF's metadata three times, ~3 min under load)."""
    from l2v.model.checkpoint import open_weights
    from l2v.model.load import load_backbone, load_config
    from l2v.model.source import resolve_model

    source = resolve_model(None, demo=True)
    ref = load_backbone(source, "fp32").state_dict()
    weights = open_weights(source, load_config(source))
    assert set(weights.names()) == set(ref)
    for name in weights.names():
        assert torch.equal(weights.get(name), ref[name]), name
    emb = "embed_tokens.weight"
    assert torch.equal(weights.get_rows(emb, 100, 130), ref[emb][100:130])


def test_synthetic_gguf_streams_the_safetensors_values(tmp_path):
    """bench/make_synthetic.py --gguf (the 8B GGUF of the memory bench, here tiny): read back tensor by tensor
    by `GgufWeights` (q/k un-permuted as transformers does) it equals the safetensors checkpoint of the same
    seed within Q8_0's rounding (the norms, F32 in the GGUF, within the checkpoint's bf16 rounding)."""
    import numpy as np
    from transformers import AutoConfig

    from l2v.model.checkpoint import GgufWeights, SafetensorsWeights
    from synthetic import generator

    ms = generator()
    ms.write_model(tmp_path / "st", "tiny-llama", 2, seed=0)
    ms.write_gguf(tmp_path / "m.gguf", "tiny-llama", 2, "Q8_0", seed=0)
    config = AutoConfig.from_pretrained(str(tmp_path), gguf_file="m.gguf")
    assert (config.num_hidden_layers, config.hidden_size, config.num_key_value_heads) == (2, 64, 2)
    g, st = GgufWeights(tmp_path / "m.gguf", config), SafetensorsWeights(str(tmp_path / "st"), config)
    assert sorted(g.names()) == sorted(st.names())
    for name in g.names():
        a, b = (t.float().numpy() if hasattr(t, "float") else np.asarray(t, np.float32)
                for t in (g.get(name), st.get(name)))
        assert a.shape == b.shape, name
        bf16 = 2 ** -8 * np.abs(b).max()
        tol = bf16 if a.ndim == 1 else np.abs(b).max() / 127 + bf16  # + int8 blocks for the matrices
        assert np.abs(a - b).max() <= tol, (name, np.abs(a - b).max(), tol)
