"""Forward FLOPs of a decoder used as a bidirectional encoder, counted from its config.

Convention: one multiply-add = 2 FLOPs. Counted per token per layer:
  q/o projections 2*h*(n_heads*head_dim) each; k/v projections 2*h*(n_kv_heads*head_dim) each (GQA);
  gated MLP (gate, up, down) 3 * 2*h*intermediate;
  attention QK^T and AV 2*n_heads*head_dim*S each, where every query sees all S keys (bidirectional,
  no causal halving).
Not counted: embedding lookup (a gather), norms, rotary, softmax, activations, pooling (all O(h) per
token, under 1% here), and the LM head (an embedding model has none).
"""
from __future__ import annotations

from l2v.errors import InputError


def _get(cfg, key, default=None):
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def config_dims(cfg) -> dict:
    h = _get(cfg, "hidden_size")
    heads = _get(cfg, "num_attention_heads")
    layers = _get(cfg, "num_hidden_layers")
    inter = _get(cfg, "intermediate_size")
    if not all(isinstance(v, int) and v > 0 for v in (h, heads, layers, inter)):
        raise InputError("the model config lacks hidden_size, num_attention_heads, num_hidden_layers "
                         "or intermediate_size; cannot count FLOPs")
    kv = _get(cfg, "num_key_value_heads") or heads
    head_dim = _get(cfg, "head_dim") or h // heads
    return {"hidden": h, "heads": heads, "kv_heads": kv, "head_dim": head_dim, "layers": layers,
            "intermediate": inter}


def flops_per_token(cfg, seq_len: int) -> dict:
    """Breakdown and total FLOPs for one token of a sequence of `seq_len` real tokens."""
    d = config_dims(cfg)
    h, q_width, kv_width = d["hidden"], d["heads"] * d["head_dim"], d["kv_heads"] * d["head_dim"]
    per_layer = {
        "q_proj": 2 * h * q_width,
        "k_proj": 2 * h * kv_width,
        "v_proj": 2 * h * kv_width,
        "o_proj": 2 * q_width * h,
        "mlp": 3 * 2 * h * d["intermediate"],
        "attn_qk": 2 * q_width * seq_len,
        "attn_av": 2 * q_width * seq_len,
    }
    out = {k: v * d["layers"] for k, v in per_layer.items()}
    out["total"] = sum(out.values())
    return out


def forward_flops(cfg, lengths, padded_to: int | None = None) -> dict:
    """FLOPs of one forward over rows of real `lengths`.

    `useful`: each row at its own length (what an ideal padding-free engine must do);
    `executed`: every row padded to `padded_to` (default: the longest), what a padded batch computes.
    """
    lengths = [int(n) for n in lengths]
    if not lengths or min(lengths) < 1:
        raise InputError("forward_flops needs at least one row of positive length")
    width = padded_to or max(lengths)
    useful = sum(n * flops_per_token(cfg, n)["total"] for n in lengths)
    executed = len(lengths) * width * flops_per_token(cfg, width)["total"]
    return {"useful": useful, "executed": executed}
