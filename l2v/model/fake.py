"""The exported module without its weights: `EmbeddingModel` over a backbone made of FakeTensors.

`fake_encoder(config, dtype, ...)` builds the backbone with `AutoModel.from_config` under
`FakeTensorMode` in the target dtype (fp32 / fp16 / bf16): every parameter has its shape and dtype and no
memory, so an 8B model traces in the memory of a small one. It is wrapped in l2v's own `EmbeddingModel`
unchanged, so the graph contract (inputs, 4-D bidirectional mask, positions from the mask, pooling) is the
in-memory export's. (The meta device does not work: the traced inputs are CPU tensors.)

Buffers that no checkpoint holds (rotary `inv_freq`, Gemma's `embed_scale`) are computed for real by
transformers' own initialiser (`_init_weights`) on real empty tensors: `real_buffers`.
"""
from __future__ import annotations

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(name: str):
    import torch

    return getattr(torch, DTYPES[name])


def fake_encoder(config, dtype: str, pooling: str = "mean", normalize: bool = False, causal: bool = False,
                 dim: int | None = None, attn_implementation: str | None = None):
    """`EmbeddingModel` whose parameters are FakeTensors (shapes and dtypes only) and whose
    non-persistent buffers are real."""
    import copy

    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import AutoModel

    from l2v.model.encoder import EmbeddingModel

    config = copy.deepcopy(config)
    with FakeTensorMode(allow_non_fake_inputs=True):
        backbone = AutoModel.from_config(config, dtype=torch_dtype(dtype), attn_implementation=attn_implementation)
        encoder = EmbeddingModel(backbone, pooling, normalize, causal, dim)
    real_buffers(backbone)
    return encoder.eval()


def real_buffers(backbone) -> dict:
    """Replace every non-persistent buffer of `backbone` by a real tensor computed by transformers'
    `_init_weights` for its module (as `from_pretrained` does after loading on the meta device).
    Returns {name: tensor}."""
    import torch

    out = {}
    for mod_name, mod in backbone.named_modules():
        names = getattr(mod, "_non_persistent_buffers_set", set())
        if not names:
            continue
        for b in names:
            fake = mod._buffers[b]
            mod._buffers[b] = torch.empty(fake.shape, dtype=fake.dtype)
        backbone._init_weights(mod)
        for b in names:
            out[f"{mod_name}.{b}" if mod_name else b] = mod._buffers[b]
    return out
