"""Which decoder layers hurt the embedding most when quantized, measured end to end.

Each layer's seven projections alone are fake-quantized in PyTorch exactly as `w8a8.per_token_int8`
does it (after smoothing, if any: x/s per token to int8, s*W per output channel to int8, the outlier
channels in fp32), and the drop in mean
cosine of the sentence embedding against fp32 on a few calibration texts is that layer's sensitivity.
(A per-projection output-SQNR ranking was tried first: it flags the late down_projs and misses layers
0-4, where the massive activations are made; end to end ranks those first.)
"""
from __future__ import annotations

import re

import numpy as np

UNIT_RE = re.compile(r"(.*layers\.\d+\.)(?:self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)$")
UNIT_OF = {"q": "qkv", "k": "qkv", "v": "qkv", "o": "o", "gate": "gate_up", "up": "gate_up", "down": "down"}
PATTERNS = {"qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "o": ("self_attn.o_proj",),
            "gate_up": ("mlp.gate_proj", "mlp.up_proj"), "down": ("mlp.down_proj",)}


def unit_of(module: str) -> str | None:
    m = UNIT_RE.match(module)
    if not m:
        return None
    return m.group(1) + UNIT_OF[m.group(2) or m.group(3)]


def unit_patterns(unit: str) -> list[str]:
    """MatMul name patterns of a unit ("backbone.layers.3.gate_up" -> the gate and up projections)."""
    prefix, _, kind = unit.rpartition(".")
    return [f"{prefix}.{p}" for p in PATTERNS[kind]]


def _fq_tokens(x):
    import torch

    s = x.abs().amax(-1, keepdim=True).clamp_min(1e-8) / 127.0
    return torch.round(x / s) * s


def _fq_channels(w):
    import torch

    s = w.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0  # torch weight is [out, in]
    return torch.round(w / s) * s


def layer_of(module: str) -> str | None:
    """"backbone.layers.3.mlp.down_proj" -> "backbone.layers.3" (all seven projections of a layer)."""
    u = unit_of(module)
    return u.rpartition(".")[0] if u else None


def unit_patterns_any(unit: str) -> list[str]:
    """Patterns for a unit name from `unit_of` or from `layer_of`."""
    kind = unit.rpartition(".")[2]
    return unit_patterns(unit) if kind in PATTERNS else [unit + "."]


def rank_units(model, batches: list[dict], scales: dict, group=layer_of,
               outliers: dict | None = None) -> list[tuple[str, float]]:
    """[(unit, cosine drop)] most sensitive first, one forward per unit (`group`: layer_of or unit_of).
    `scales`: {module: smoothing s} (missing = 1); `outliers`: {module: input channels kept in fp32}."""
    import torch

    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and group(n)}
    units: dict[str, list[str]] = {}
    for n in linears:
        units.setdefault(group(n), []).append(n)

    def run():
        with torch.no_grad():
            return torch.cat([model(**{k: torch.from_numpy(v) for k, v in b.items()}) for b in batches]).numpy()

    ref = run()
    out = []
    for unit, names in units.items():
        for n in names:
            m = linears[n]
            s = torch.from_numpy(np.asarray(scales.get(n, np.ones(m.in_features)), dtype=np.float32))
            w = m.weight.data * s[None, :]
            keep = torch.ones(m.in_features)
            idx = torch.as_tensor(np.asarray((outliers or {}).get(n, []), dtype=np.int64))
            keep[idx] = 0.0
            wq = _fq_channels(w * keep[None, :])

            def fwd(x, m=m, s=s, wq=wq, w_o=w[:, idx], idx=idx, keep=keep):
                xs = x / s
                y = _fq_tokens(xs * keep) @ wq.T + xs[..., idx] @ w_o.T
                return y + m.bias if m.bias is not None else y
            m.forward = fwd
        got = run()
        for n in names:
            del linears[n].forward  # back to the class's forward
        a = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        b = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
        out.append((unit, float(1.0 - (a * b).sum(1).mean())))
    return sorted(out, key=lambda t: -t[1])

