"""The architecture descriptor: one entry per supported decoder family, holding what the rest of l2v
needs to know about it. Adding an architecture is one entry here (plus a tiny-model test).

- `projections`: the decoder layer's Linear modules, grouped into the units quantization treats
  together (q/k/v read one tensor, gate/up read one tensor): unit -> module paths inside a layer.
- `norm`: "rms" (w * x / rms) or "rms_1p" ((1 + w) * x / rms, Gemma); `qk_norm`: RMSNorm on q and k.
- `sliding`: "none", or "layer_types" (per-layer windows from `config.layer_types` + `sliding_window`;
  the exported mask makes those layers bidirectional within |i - j| < window), or "config_ignored"
  (Mistral's config-wide `sliding_window`, which transformers itself does not apply without layer_types).
- `packed`: the padding-free engine (l2v.engine) runs it.
- `fp32_scores`: 16-bit graphs keep q/k (projection, RoPE), QK^T and softmax in fp32 (l2v.model.precision).
  Qwen2's q/k biases make q and k large: rounding them to fp16 moves the attention logits enough to cost
  Qwen2.5-Coder-1.5B min cos 0.9975 (PyTorch's own fp16 forward and ORT alike); with them fp32, 0.99999.
- `eos_text`: the literal llm2vec 0.2.3 appends for eos pooling (llm2vec.py L169-179), keyed on the
  config class as the reference does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from l2v.errors import UnsupportedArchitectureError

LLAMA_UNITS = {
    "qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "o": ("self_attn.o_proj",),
    "gate_up": ("mlp.gate_proj", "mlp.up_proj"),
    "down": ("mlp.down_proj",),
}
LAYER_PREFIX = re.compile(r"^(.*?layers\.\d+\.)(.+)$")


@dataclass(frozen=True)
class Arch:
    model_type: str
    projections: dict = field(default_factory=lambda: dict(LLAMA_UNITS))
    norm: str = "rms"
    qk_norm: bool = False
    qkv_bias: bool = False
    sliding: str = "none"
    packed: bool = True
    eos_text: str = ""
    fp32_scores: bool = False

    @property
    def linear_names(self) -> tuple[str, ...]:
        """The seven projection names as the packed engine stores them (q_proj, ..., down_proj)."""
        return tuple(p.rsplit(".", 1)[1] for unit in self.projections.values() for p in unit)

    def unit_of(self, module: str) -> str | None:
        """"backbone.layers.3.mlp.up_proj" -> "backbone.layers.3.gate_up"; None outside decoder layers.
        A Linear inside a decoder layer that matches no projection raises: an unknown (e.g. fused
        `qkv_proj`) projection must not silently vanish from a ranking."""
        m = LAYER_PREFIX.match(module)
        if not m:
            return None
        prefix, rest = m.groups()
        for unit, paths in self.projections.items():
            if rest in paths:
                return prefix + unit
        raise UnsupportedArchitectureError(
            f"{self.model_type}: decoder module {module!r} is not a known projection",
            hint=f"known: {', '.join(p for ps in self.projections.values() for p in ps)}; "
                 "fused or renamed projections need an entry in l2v/model/arch.py")

    def unit_patterns(self, unit: str) -> list[str]:
        """Module name patterns of a unit ("...layers.3.gate_up" -> the gate and up projections) or of a
        whole layer ("...layers.3" -> every module under it)."""
        prefix, _, kind = unit.rpartition(".")
        if kind in self.projections:
            return [f"{prefix}.{p}" for p in self.projections[kind]]
        return [unit + "."]


ARCHS: dict[str, Arch] = {a.model_type: a for a in (
    Arch("llama", eos_text=" </s>"),
    Arch("mistral", sliding="config_ignored", eos_text=" </s>"),
    Arch("qwen2", qkv_bias=True, sliding="layer_types", eos_text="<|endoftext|>", fp32_scores=True),
    Arch("qwen3", qk_norm=True, sliding="layer_types"),
    Arch("gemma", norm="rms_1p", eos_text="<eos>"),
    Arch("gemma2", norm="rms_1p", sliding="layer_types", packed=False),
    Arch("gemma3", norm="rms_1p", qk_norm=True, sliding="layer_types", packed=False),
    Arch("gemma3_text", norm="rms_1p", qk_norm=True, sliding="layer_types", packed=False),
)}
SUPPORTED = tuple(ARCHS)


def arch_of(model_type_or_config) -> Arch:
    """The descriptor for a model type (or a transformers config); `UnsupportedArchitectureError` otherwise."""
    mt = getattr(model_type_or_config, "model_type", model_type_or_config)
    if mt not in ARCHS:
        raise UnsupportedArchitectureError(f"architecture {mt!r} is not supported",
                                           hint=f"supported: {', '.join(SUPPORTED)}")
    return ARCHS[mt]
