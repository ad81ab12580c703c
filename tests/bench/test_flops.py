"""FLOP counting against a hand count."""
import pytest

from l2v.bench.flops import flops_per_token, forward_flops
from l2v.errors import InputError

# SmolLM2-135M: hidden 576, 9 heads x 64, 3 kv heads (GQA), intermediate 1536, 30 layers
SMOL = {"hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
        "intermediate_size": 1536, "num_hidden_layers": 30}


def test_smollm2_per_token_by_hand():
    # per layer: q 2*576*576 = 663,552; k = v = 2*576*192 = 221,184; o = 663,552;
    # mlp 3*2*576*1536 = 5,308,416; attention at S=128: QK^T 2*576*128 = 147,456, AV the same
    per_layer = 663_552 + 221_184 + 221_184 + 663_552 + 5_308_416 + 147_456 + 147_456
    got = flops_per_token(SMOL, 128)
    assert got["total"] == 30 * per_layer == 221_184_000
    assert got["k_proj"] == got["v_proj"] == 30 * 221_184
    assert got["attn_qk"] == 30 * 147_456


def test_head_dim_defaults_and_config_objects():
    class Cfg:
        hidden_size, num_attention_heads, intermediate_size, num_hidden_layers = 64, 4, 128, 2
        num_key_value_heads = None  # -> MHA
        head_dim = None  # -> 64 // 4

    got = flops_per_token(Cfg(), 10)
    assert got["k_proj"] == 2 * 2 * 64 * 64 and got["attn_av"] == 2 * 2 * 64 * 10


def test_forward_useful_vs_executed():
    f = forward_flops(SMOL, [128, 32])
    assert f["useful"] == 128 * flops_per_token(SMOL, 128)["total"] + 32 * flops_per_token(SMOL, 32)["total"]
    assert f["executed"] == 2 * 128 * flops_per_token(SMOL, 128)["total"]
    with pytest.raises(InputError):
        forward_flops({"hidden_size": 8}, [4])
