"""Activation statistics from real text: the input of every nn.Linear of the PyTorch model."""
from __future__ import annotations

import numpy as np

from l2v.numerics import capture_inputs


def collect_stats(model, batches: list, keep_samples: int = 0, seed: int = 0) -> dict:
    """{module name (as in the ONNX name scopes, e.g. "backbone.layers.0.mlp.down_proj"):
    {"amax": per-input-channel max |x|, "mean_abs": per-channel mean |x|, "samples": up to keep_samples
    random token rows of x}} over non-padding tokens only."""
    import torch

    stats: dict[str, dict] = {}
    rng = np.random.default_rng(seed)
    current = {}

    def seen(name, x):
        x = x.detach()
        x = x.reshape(-1, x.shape[-1])[current["mask"]].float()
        a = x.abs()
        st = stats.setdefault(name, {"amax": torch.zeros(x.shape[-1]), "sum_abs": torch.zeros(x.shape[-1]),
                                     "n": 0, "samples": []})
        st["amax"] = torch.maximum(st["amax"], a.amax(0))
        st["sum_abs"] += a.sum(0)
        st["n"] += x.shape[0]
        if keep_samples:
            take = rng.choice(x.shape[0], size=min(x.shape[0], max(1, keep_samples // len(batches) + 1)),
                              replace=False)
            st["samples"].append(x[torch.from_numpy(take)].numpy())

    from l2v.quantize.graph import HEAD_SCOPE

    linears = {n: m for n, m in model.named_modules()  # per-token inputs only: not the head after pooling
               if isinstance(m, torch.nn.Linear) and not n.startswith(HEAD_SCOPE)}
    with capture_inputs(linears, seen), torch.no_grad():
        for b in batches:
            current["mask"] = torch.from_numpy(b["attention_mask"].reshape(-1).astype(bool))
            model(**{k: torch.from_numpy(b[k]) for k in b.keys()})
    out = {}
    for name, st in stats.items():
        rec = {"amax": st["amax"].numpy(), "mean_abs": (st["sum_abs"] / max(st["n"], 1)).numpy()}
        if keep_samples:
            rec["samples"] = np.concatenate(st["samples"])[:keep_samples]
        out[name] = rec
    return out
