"""Tiny random-weight decoder models (built in code, fp32, eager attention) and a padded HF reference,
shared by the engine tests (a uniquely named module: several conftest.py files exist in tests/)."""
from __future__ import annotations

import torch

ARCHS = ("llama", "mistral", "qwen2", "qwen3", "gemma")


def tiny_model(arch: str, seed: int = 0, **over):
    import transformers as tf

    cls = {"llama": tf.LlamaConfig, "mistral": tf.MistralConfig, "qwen2": tf.Qwen2Config,
           "qwen3": tf.Qwen3Config, "gemma": tf.GemmaConfig}[arch]
    kw = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
              pad_token_id=0, initializer_range=0.1, attn_implementation="eager")
    kw.update(over)
    torch.manual_seed(seed)
    model = tf.AutoModel.from_config(cls(**kw)).float().eval()
    with torch.no_grad():  # non-trivial norm weights, so every norm (incl. qwen3 q/k norm) matters
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
    return model


def random_seqs(lens, vocab=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, vocab, (n,), generator=g) for n in lens]


def padded_reference(model, seqs, pooling_masks, pooling, side="right", causal=False):
    """HF forward on a padded batch made bidirectional by an explicit 4-D additive float mask
    (0 = allowed, finfo.min = padded key), position_ids = cumsum(attention_mask) - 1 clamped at 0,
    pooled with `l2v.model.pooling.pool`. Returns float32 `[B, hidden]`."""
    from l2v.model.pooling import pool

    bsz, seq = len(seqs), max(len(s) for s in seqs)
    param = next(model.parameters())
    dtype, dev = param.dtype, param.device
    ids = torch.zeros(bsz, seq, dtype=torch.long, device=dev)
    am = torch.zeros(bsz, seq, dtype=torch.long, device=dev)
    pm = torch.zeros(bsz, seq, dtype=torch.long, device=dev)
    for i, (s, m) in enumerate(zip(seqs, pooling_masks)):
        n = len(s)
        sl = slice(seq - n, seq) if side == "left" else slice(0, n)
        ids[i, sl], am[i, sl], pm[i, sl] = torch.as_tensor(s), 1, torch.as_tensor(m)
    allowed = am[:, None, None, :].bool().expand(bsz, 1, seq, seq)
    if causal:
        allowed = allowed & torch.ones(seq, seq, dtype=torch.bool, device=dev).tril()
    mask = torch.where(allowed, torch.tensor(0.0, dtype=dtype, device=dev),
                       torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=dev))
    pos = (am.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
    return pool(hidden, am, pm, pooling).float()
