"""The `bnb` kind: the artifact's torch weights quantized by bitsandbytes when loaded (LLM.int8() or NF4).

The variant stores no file of its own, only its config (`variant.quant`, written by `l2v.quantize`) and
`base: "torch"`. bitsandbytes >= 0.45 has a CPU backend, but on CPU it is slower than fp32 (measured in
docs/quantization.md): these variants are for memory, and for CUDA. Without bitsandbytes, a clear
`OptionalDependencyError` names the install command.
"""
from __future__ import annotations

from pathlib import Path

from l2v.errors import ArtifactError, OptionalDependencyError
from l2v.runtime.backend import RunOptions
from l2v.runtime.torch import TorchBackend, load_encoder

METHODS = ("bnb-int8", "bnb-nf4")


def import_bnb():
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise OptionalDependencyError("bitsandbytes", "bnb", "the bnb-int8/bnb-nf4 variants") from e
    return bnb


def _decoder_linear(name: str) -> bool:
    return "layers." in name  # the decoder layers' projections only; no embeddings, no lm head


def apply_bnb(model, quant: dict, device: str = "cpu"):
    """Replace every decoder projection `nn.Linear` of `model` (in place) as the config dict `quant` says
    (`method` bnb-int8: `threshold`; bnb-nf4: `quant_type`, `blocksize`). Returns `model`."""
    import torch

    bnb = import_bnb()
    method = quant.get("method")
    if method not in METHODS:
        raise ArtifactError(f"a bnb variant has quantization method {method!r}", hint=f"expected one of {METHODS}")
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if not isinstance(child, torch.nn.Linear) or not _decoder_linear(full):
                continue
            bias = child.bias is not None
            if method == "bnb-int8":
                q = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=bias,
                                        has_fp16_weights=False, threshold=float(quant["threshold"]))
                q.weight = bnb.nn.Int8Params(child.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
            else:
                q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=bias, compute_dtype=torch.float32,
                                      quant_type=quant["quant_type"])
                q.weight = bnb.nn.Params4bit(child.weight.data.clone(), requires_grad=False,
                                             quant_type=quant["quant_type"], blocksize=int(quant["blocksize"]))
            if bias:
                q.bias = torch.nn.Parameter(child.bias.data.clone(), requires_grad=False)
            setattr(mod, child_name, q.to(device))
    return model


class BnbBackend(TorchBackend):
    @classmethod
    def open(cls, artifact, variant, options: RunOptions, root: Path | None = None) -> "BnbBackend":
        import_bnb()
        model = load_encoder(artifact, needed_by=f"the {variant.quant.get('method') if variant.quant else 'bnb'} variant")
        apply_bnb(model, variant.quant or {}, options.device)
        return cls(model.to(options.device), options.device, variant.dtype)
