"""One attention-mask mechanism for every supported architecture and attention implementation.

We never rely on `is_causal=False` on attention modules (measured: not bidirectional under eager, and
under sdpa only without padding). Instead the encoder builds an explicit additive 4-D float mask
`[B, 1, S, S]` (0 = attend, finfo(dtype).min = blocked) and hands it to the backbone as `attention_mask`.
transformers returns a 4-D mask unchanged from `create_causal_mask`, and both the eager and the sdpa
kernels consume an additive float mask. Models with per-layer attention types (gemma2/3, qwen2/3 with
sliding layers) receive a dict `{layer_type: mask}`, which their forward also takes as-is.
"""
from __future__ import annotations

import torch

SLIDING = "sliding_attention"


def allowed_pairs(attention_mask: torch.Tensor, causal: bool, window: int | None = None) -> torch.Tensor:
    """Boolean `[B, 1, S, S]`: query i may attend key j. Padded keys are never allowed."""
    seq = attention_mask.shape[1]
    keys = attention_mask[:, None, None, :].bool()
    idx = torch.arange(seq, device=attention_mask.device)
    diff = idx[:, None] - idx[None, :]  # query - key
    allowed = keys.expand(-1, 1, seq, -1)
    if causal:
        allowed = allowed & (diff >= 0)
    if window is not None:
        allowed = allowed & (diff.abs() < window)
    return allowed


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where allowed, the most negative finite value where blocked (no -inf: no NaN on empty rows)."""
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, blocked)


def _sliding_window(config, causal: bool) -> int | None:
    """The window as `|i - j| < window`. A config that is bidirectional through `is_causal: false` gets
    transformers' bidirectional sliding mask, which is inclusive (`|i - j| <= sliding_window`); Gemma 3's
    `use_bidirectional_attention` keeps the exclusive bound (its config already halves the window)."""
    window = getattr(config, "sliding_window", None)
    if not window:
        return None
    inclusive = not causal and getattr(config, "is_causal", True) is False \
        and not getattr(config, "use_bidirectional_attention", False)
    return int(window) + int(inclusive)


def build_masks(config, attention_mask: torch.Tensor, dtype: torch.dtype, causal: bool):
    """The `attention_mask` argument to pass to a transformers backbone.

    Returns one `[B, 1, S, S]` additive mask, or a dict per layer type for models that declare
    `layer_types` containing sliding-window layers.
    """
    layer_types = getattr(config, "layer_types", None)
    full = additive_mask(allowed_pairs(attention_mask, causal), dtype)
    if not layer_types or SLIDING not in set(layer_types):
        return full
    masks = {lt: full for lt in set(layer_types)}
    window = _sliding_window(config, causal)
    masks[SLIDING] = additive_mask(allowed_pairs(attention_mask, causal, window), dtype)
    return masks


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions count real tokens only, so left and right padding give the same rotary phases."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def config_is_causal(config) -> bool | None:
    """What the model's own config says about attention: False when it asks for bidirectional attention
    (`use_bidirectional_attention: true`, e.g. EmbeddingGemma; `is_causal: false`, e.g. gte-Qwen2-style
    configs), True when it says `is_causal: true`, None when it says nothing (a plain decoder)."""
    if getattr(config, "use_bidirectional_attention", False):
        return False
    flag = getattr(config, "is_causal", None)
    return None if flag is None else bool(flag)
