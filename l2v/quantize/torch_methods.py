"""PyTorch-runtime variants with bitsandbytes (LLM.int8() and NF4), for users serving from PyTorch.

Nothing is written but the manifest entry: the quantization is applied when the variant is loaded,
from the artifact's merged fp32 torch/ weights (`load_torch_variant(dir, "bnb-int8")`). bitsandbytes
is imported lazily; without it a clear OptionalDependencyError names the install command.
bitsandbytes >= 0.45 has a CPU backend, but on CPU it is slower than fp32 (measured in
docs/quantization.md): these variants are for memory, and for CUDA.
"""
from __future__ import annotations

from pathlib import Path

from l2v.errors import InputError, OptionalDependencyError
from l2v.quantize.config import BnbInt8Config, BnbNf4Config, config_from_dict
from l2v.quantize.registry import register


def import_bnb():
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise OptionalDependencyError("bitsandbytes", "bnb", "the bnb-int8/bnb-nf4 torch variants") from e
    return bnb


def _skip(name: str) -> bool:
    return "layers." not in name  # only the decoder layers' projections; no embeddings, no lm head


def apply_bnb(model, cfg, device: str = "cpu"):
    """Replace every projection nn.Linear of `model` (in place) with its bitsandbytes counterpart."""
    import torch

    bnb = import_bnb()
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if not isinstance(child, torch.nn.Linear) or _skip(full):
                continue
            bias = child.bias is not None
            if isinstance(cfg, BnbInt8Config):
                q = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=bias,
                                        has_fp16_weights=False, threshold=float(cfg.threshold))
                q.weight = bnb.nn.Int8Params(child.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
            else:
                q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=bias, compute_dtype=torch.float32,
                                      quant_type=cfg.quant_type)
                q.weight = bnb.nn.Params4bit(child.weight.data.clone(), requires_grad=False,
                                             quant_type=cfg.quant_type, blocksize=cfg.blocksize)
            if bias:
                q.bias = torch.nn.Parameter(child.bias.data.clone(), requires_grad=False)
            setattr(mod, child_name, q.to(device))
    return model


@register(BnbInt8Config, backend="torch")
@register(BnbNf4Config, backend="torch")
def build_bnb(ctx, cfg, tmp: Path) -> dict:
    import copy

    from l2v.quantize.measure import TorchRunner

    import_bnb()
    model = apply_bnb(copy.deepcopy(ctx.torch_model), cfg)
    dtype = "int8" if isinstance(cfg, BnbInt8Config) else cfg.quant_type
    return {"file": None, "dtype": dtype, "weights": "torch/ (quantized at load)", "_runner": TorchRunner(model)}


def load_torch_variant(path, variant: str, device: str = "cpu"):
    """`Encoder` over the artifact's torch weights quantized as the manifest's `torch_variants[variant]`."""
    import l2v
    from l2v.runtime.encoder import Encoder

    base = l2v.load(path, backend="torch", device=device)
    entry = (base.manifest.get("torch_variants") or {}).get(variant)
    if entry is None:
        raise InputError(f"torch variant {variant!r} is not in this artifact",
                         hint=f"available: {', '.join(base.manifest.get('torch_variants') or {}) or 'none'}")
    apply_bnb(base.backend.model, config_from_dict(entry["quant"]), device)
    return Encoder(base.root, base.manifest, base.backend, variant, base.preprocessor)
