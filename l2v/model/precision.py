"""fp32 attention scores inside a 16-bit model, for the graphs an export traces (fp16 / bf16).

Qwen2's q/k biases make q and k large, and rounding them to 16 bits moves the attention logits: Qwen2.5-Coder-
1.5B loses min cos 0.9975 against fp32 in fp16, in PyTorch's own fp16 forward as in ONNX Runtime. Keeping the
q/k projections (and so RoPE), QK^T and softmax in fp32 brings it to 0.99999 (bench/results/fp16_scores.md).

`fp32_scores(encoder, dtype)` is a context manager for the trace: on the q_proj / k_proj instances of every
attention module it sets a forward computing `x.float() @ W.t().float() + b.float()` (the weights stay 16-bit
initializers, read through a Cast: no fp32 copy on disk), and it points the config at an attention function
that runs transformers' own (sdpa or eager) on fp32 q, k, v and mask and returns the 16-bit dtype. On exit the
instances and the config are as before. A no-op for fp32 and for architectures without `Arch.fp32_scores`.
"""
from __future__ import annotations

import contextlib
import sys
from types import MethodType

PREFIX = "l2v_fp32_scores_"


def wanted(config, dtype: str) -> bool:
    from l2v.model.arch import arch_of

    return dtype in ("fp16", "bf16") and arch_of(config).fp32_scores


def precision_facts(config, dtype: str) -> dict:
    """What the manifest says of a graph's attention precision (nothing for graphs it does not apply to)."""
    return {"attention_scores": "fp32 (q/k projections, RoPE, QK^T, softmax)"} if wanted(config, dtype) else {}


def _fp32_linear(self, x):
    y = x.float() @ self.weight.t().float()
    return y + self.bias.float() if self.bias is not None else y


def _attention_function(inner: str):
    """The registered name of an attention function running `inner` in fp32 (registered once per inner)."""
    from transformers import AttentionInterface
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    name = PREFIX + inner
    if name in ALL_ATTENTION_FUNCTIONS:
        return name

    def attention(module, query, key, value, attention_mask, *args, **kwargs):
        fn = (sys.modules[type(module).__module__].eager_attention_forward if inner == "eager"
              else ALL_ATTENTION_FUNCTIONS[inner])
        mask = attention_mask.float() if attention_mask is not None and attention_mask.is_floating_point() \
            else attention_mask
        out, weights = fn(module, query.float(), key.float(), value.float(), mask, *args, **kwargs)
        return out.to(value.dtype), weights

    AttentionInterface.register(name, attention)
    return name


def _attention_modules(model):
    import torch

    for mod in model.modules():
        q, k = getattr(mod, "q_proj", None), getattr(mod, "k_proj", None)
        if isinstance(q, torch.nn.Linear) and isinstance(k, torch.nn.Linear):
            yield mod


@contextlib.contextmanager
def fp32_scores(encoder, dtype: str):
    """Within: `encoder` (an EmbeddingModel or a backbone) traces with fp32 q/k, scores and softmax."""
    config = encoder.config
    if not wanted(config, dtype):
        yield False
        return
    inner = config._attn_implementation or "sdpa"
    if inner.startswith(PREFIX):
        raise RuntimeError("fp32_scores is already active on this model")
    linears = [getattr(m, n) for m in _attention_modules(encoder) for n in ("q_proj", "k_proj")]
    if not linears:
        from l2v.errors import UnsupportedArchitectureError

        raise UnsupportedArchitectureError(f"{config.model_type}: no q_proj/k_proj Linear found for fp32 scores",
                                           hint="the attention module's projections need an entry in l2v/model/arch.py")
    try:
        for lin in linears:
            lin.forward = MethodType(_fp32_linear, lin)
        config._attn_implementation = _attention_function(inner)
        yield True
    finally:
        for lin in linears:
            lin.__dict__.pop("forward", None)
        config._attn_implementation = inner
