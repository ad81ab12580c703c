"""The architecture descriptor: one entry per supported type, and unknown projections are an error."""
import pytest

from l2v.errors import UnsupportedArchitectureError
from l2v.model.arch import ARCHS, arch_of
from tiny import ARCHS as TINY


def test_every_tested_architecture_has_an_entry():
    assert set(TINY) <= set(ARCHS)
    with pytest.raises(UnsupportedArchitectureError, match="'phi3' is not supported"):
        arch_of("phi3")


@pytest.mark.parametrize("arch", sorted(set(TINY)))
def test_units_cover_every_decoder_linear(arch):
    """Each tiny model's decoder Linears map to the descriptor's units (7 per layer, 4 units)."""
    import torch

    from tiny import make_backbone

    model = make_backbone(arch)
    a = arch_of(model.config)
    units = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            units.setdefault(a.unit_of(name), []).append(name)
    layers = model.config.num_hidden_layers
    assert len([u for u in units if u]) == 4 * layers
    assert sum(len(v) for u, v in units.items() if u) == 7 * layers


def test_an_unknown_projection_raises_instead_of_vanishing():
    a = arch_of("llama")
    assert a.unit_of("backbone.layers.3.mlp.up_proj") == "backbone.layers.3.gate_up"
    assert a.unit_of("backbone.embed_tokens") is None
    with pytest.raises(UnsupportedArchitectureError, match="'backbone.layers.0.self_attn.qkv_proj' is not a known"):
        a.unit_of("backbone.layers.0.self_attn.qkv_proj")
    assert a.unit_patterns("backbone.layers.3.gate_up") == ["backbone.layers.3.mlp.gate_proj",
                                                            "backbone.layers.3.mlp.up_proj"]


def test_ranking_a_fused_projection_model_is_an_error():
    """A decoder layer with a fused qkv Linear (Phi-3 style) must not give an empty ranking."""
    import torch

    from l2v.model.encoder import EmbeddingModel
    from l2v.quantize.sensitivity import rank_units
    from tiny import make_backbone

    backbone = make_backbone("llama")
    backbone.layers[0].self_attn.qkv_proj = torch.nn.Linear(64, 3 * 64)
    with pytest.raises(UnsupportedArchitectureError, match="qkv_proj"):
        rank_units(EmbeddingModel(backbone), [], {})
