"""LoRA adapters merged tensor by tensor while the weights stream: never the whole model in memory.

`MergedWeights(weights, adapter_dirs)` is a weight source (the interface of `l2v.model.checkpoint`) whose
`get(name, dtype)` returns the merged tensor: `W + (B @ A) * scaling` for each adapter in order, computed
in fp32 — the ops, order and precision of peft's `merge_and_unload` on an fp32 model (what
`l2v.model.adapters.merge_adapters` does to the whole model; equal bitwise, tests/model/test_checkpoint.py)
— then cast once. Peak memory: one base tensor in fp32 plus its LoRA pairs and their product.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from l2v.errors import AdapterError


@dataclass
class LoraPair:
    a_key: str = ""
    b_key: str = ""
    scaling: float = 1.0


class StreamedAdapter:
    """One LoRA adapter directory indexed by backbone module name (`layers.0.self_attn.q_proj`)."""

    def __init__(self, path):
        from l2v.model.adapters import WEIGHTS, _module_name, read_adapter
        from l2v.model.checkpoint import SafetensorsFile

        self.info = read_adapter(str(path))  # config, shapes, sha256; AdapterError when unreadable
        cfg = self.info.config
        for flag in ("use_dora", "fan_in_fan_out", "lora_bias"):
            if cfg.get(flag):
                raise AdapterError(f"adapter {str(path)!r}: {flag}=true is not supported by the streaming merge",
                                   hint="merge it with peft first, or export a smaller model in memory")
        if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
            raise AdapterError(f"adapter {str(path)!r}: rank_pattern/alpha_pattern are not supported by the "
                               "streaming merge", hint="merge it with peft first")
        r, alpha = int(cfg["r"]), float(cfg.get("lora_alpha", cfg["r"]))
        scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        self.pairs: dict[str, LoraPair] = {}
        for key in self.info.tensors:
            parsed = _module_name(key)
            if parsed:
                pair = self.pairs.setdefault(parsed[0], LoraPair(scaling=scaling))
                setattr(pair, "a_key" if parsed[1] == "lora_A" else "b_key", key)
        if not self.pairs:
            raise AdapterError(f"adapter {self.info.path!r} holds no LoRA tensors")
        for module, pair in self.pairs.items():
            if not (pair.a_key and pair.b_key):
                raise AdapterError(f"adapter {self.info.path!r}: module {module!r} lacks lora_A or lora_B")
        self._file = SafetensorsFile(Path(path) / WEIGHTS)

    def fit(self, weights) -> None:
        """Rename modules of an adapter saved on a *ForCausalLM ('model.layers...'), then check every
        LoRA shape against the base weight; one line naming the adapter, module and shapes on a mismatch."""
        names = set(weights.names())
        if all(f"{m}.weight" not in names and f"{m.removeprefix('model.')}.weight" in names for m in self.pairs):
            self.pairs = {m.removeprefix("model."): p for m, p in self.pairs.items()}
        for module, pair in self.pairs.items():
            weight = f"{module}.weight"
            if weight not in names:
                raise AdapterError(f"adapter {self.info.path!r} targets module {module!r}, which the base model lacks",
                                   hint="this adapter was trained for another base model")
            shape = weights.shape(weight)
            a, b = self.info.tensors[pair.a_key], self.info.tensors[pair.b_key]
            if len(shape) != 2:
                raise AdapterError(f"adapter {self.info.path!r}: module {module!r} is not a Linear (weight {shape})")
            if a[1] != shape[1] or b[0] != shape[0] or a[0] != b[1]:
                raise AdapterError(f"adapter {self.info.path!r}: module {module!r} has weight shape {shape}, "
                                   f"the adapter's lora_A/lora_B have shapes {a}/{b}",
                                   hint="the adapter is for another base model")

    def delta(self, module: str):
        """(B @ A) * scaling in fp32, as peft's `LoraLayer.get_delta_weight`; None when untouched."""
        import torch

        pair = self.pairs.get(module)
        if pair is None:
            return None
        a = self._file.get(pair.a_key).to(torch.float32)
        b = self._file.get(pair.b_key).to(torch.float32)
        return (b @ a) * pair.scaling


class MergedWeights:
    """A weight source with adapters merged in: `get(name, dtype=None)`, `get_rows`, `names`, `shape`."""

    def __init__(self, weights, adapter_dirs=()):
        self.weights = weights
        self.adapters = [StreamedAdapter(d) for d in adapter_dirs]
        for a in self.adapters:
            a.fit(weights)

    @property
    def infos(self) -> list:
        return [a.info for a in self.adapters]

    def names(self) -> list[str]:
        return self.weights.names()

    def shape(self, name: str) -> tuple[int, ...]:
        return self.weights.shape(name)

    def dtype(self, name: str):
        return self.weights.dtype(name)

    def is_merged(self, name: str) -> bool:
        module = name.removesuffix(".weight")
        return name.endswith(".weight") and any(module in a.pairs for a in self.adapters)

    def get(self, name: str, dtype=None):
        """The merged tensor in `dtype` (default: as stored). Untouched tensors are only cast."""
        import torch

        w = self.weights.get(name)
        dtype = dtype or w.dtype
        if not self.is_merged(name):
            return w if w.dtype == dtype else w.to(dtype)
        module = name.removesuffix(".weight")
        w = w.to(torch.float32)
        for a in self.adapters:
            d = a.delta(module)
            if d is not None:
                w += d  # peft: base_layer.weight.data += delta_weight
                del d
        return w if dtype == torch.float32 else w.to(dtype)

    def get_rows(self, name: str, start: int, stop: int, dtype=None):
        """Rows of an unmerged tensor (the embedding, copied in blocks); merged ones go through `get`."""
        if self.is_merged(name):
            return self.get(name, dtype)[start:stop]
        t = self.weights.get_rows(name, start, stop)
        return t if dtype is None or t.dtype == dtype else t.to(dtype)

    def items(self, dtype=None, names=None):
        for name in names or self.names():
            yield name, self.get(name, dtype)
