"""Adapter merging in LLM2Vec's layout, fit checks before merging, and checksums."""
import json
import re

import pytest
import torch

from helpers_adapters import llm2vec_adapters, make_lora
from l2v.errors import AdapterError
from l2v.model.adapters import merge_adapters, read_adapter
from tiny import save_model_dir


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("base"), "llama")


@pytest.fixture(scope="module")
def adapters(base_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return llm2vec_adapters(base_dir, root)


def _load(base_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(base_dir)).eval()


def test_layouts_are_llm2vec_like(adapters):
    mntp, simcse = adapters
    assert {"config.json", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {
        p.name for p in mntp.iterdir()}
    assert {p.name for p in simcse.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    assert "config.json" not in {p.name for p in simcse.iterdir()}


def test_merge_in_order_changes_weights_and_matches_peft(base_dir, adapters):
    from peft import PeftModel

    merged, infos = merge_adapters(_load(base_dir), [str(a) for a in adapters])
    expected = _load(base_dir)
    for a in adapters:
        expected = PeftModel.from_pretrained(expected, str(a)).merge_and_unload()
    base = _load(base_dir)
    w = "layers.0.self_attn.q_proj.weight"
    sd_m, sd_e, sd_b = merged.state_dict(), expected.state_dict(), base.state_dict()
    assert not torch.allclose(sd_m[w], sd_b[w])
    for k in sd_e:
        assert torch.allclose(sd_m[k], sd_e[k], atol=1e-6), k
    assert [i.sha256 for i in infos] == [read_adapter(str(a)).sha256 for a in adapters]
    assert len({i.sha256 for i in infos}) == 2


def test_shape_mismatch_is_one_line_naming_adapter_module_and_shapes(base_dir, tmp_path):
    wrong = make_lora(base_dir, tmp_path / "wrong", seed=3, mntp=False,
                      arch_overrides={"hidden_size": 32, "intermediate_size": 64})
    with pytest.raises(AdapterError) as e:
        merge_adapters(_load(base_dir), [str(wrong)])
    msg = str(e.value)
    assert "\n" not in msg and str(wrong) in msg
    m = re.search(r"module '(\S+)' has weight shape \((\d+), (\d+)\), the adapter's (lora_[AB]) has shape \((\d+), (\d+)\)", msg)
    assert m, msg
    module = dict(_load(base_dir).named_modules())[m.group(1)]
    assert (int(m.group(2)), int(m.group(3))) == (module.out_features, module.in_features)
    assert (int(m.group(5)), int(m.group(6))) != (4, module.in_features)  # really a mismatch


def test_missing_target_module(base_dir, adapters, tmp_path):
    from safetensors.torch import load_file, save_file

    src = adapters[1]
    dst = tmp_path / "renamed"
    dst.mkdir()
    state = {k.replace("q_proj", "query_key_value"): v for k, v in load_file(str(src / "adapter_model.safetensors")).items()}
    save_file(state, str(dst / "adapter_model.safetensors"))
    (dst / "adapter_config.json").write_text((src / "adapter_config.json").read_text())
    with pytest.raises(AdapterError, match="query_key_value.*lacks"):
        merge_adapters(_load(base_dir), [str(dst)])


def test_adapter_saved_on_causal_lm_is_accepted(base_dir, adapters, tmp_path):
    """Keys with an extra 'model.' (adapter trained on *ForCausalLM) map onto the base model."""
    from safetensors.torch import load_file, save_file

    src, dst = adapters[1], tmp_path / "lm"
    dst.mkdir()
    state = {k.replace("base_model.model.", "base_model.model.model.", 1): v
             for k, v in load_file(str(src / "adapter_model.safetensors")).items()}
    save_file(state, str(dst / "adapter_model.safetensors"))
    (dst / "adapter_config.json").write_text((src / "adapter_config.json").read_text())
    a, _ = merge_adapters(_load(base_dir), [str(dst)])
    b, _ = merge_adapters(_load(base_dir), [str(src)])
    assert torch.equal(a.state_dict()["layers.1.mlp.down_proj.weight"], b.state_dict()["layers.1.mlp.down_proj.weight"])


@pytest.mark.parametrize("broken", ["no_config", "not_lora", "corrupt"])
def test_malformed_adapters(base_dir, adapters, tmp_path, broken):
    src = adapters[1]
    dst = tmp_path / broken
    dst.mkdir()
    cfg = json.loads((src / "adapter_config.json").read_text())
    weights = (src / "adapter_model.safetensors").read_bytes()
    if broken != "no_config":
        if broken == "not_lora":
            cfg["peft_type"] = "IA3"
        (dst / "adapter_config.json").write_text(json.dumps(cfg))
    (dst / "adapter_model.safetensors").write_bytes(weights[: len(weights) // 2] if broken == "corrupt" else weights)
    with pytest.raises(AdapterError) as e:
        merge_adapters(_load(base_dir), [str(dst)])
    assert str(dst) in str(e.value) and "\n" not in str(e.value)
