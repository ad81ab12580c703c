"""Activation statistics from real text: the input of every nn.Linear of the PyTorch model, over the
whole model in memory (`collect_stats`) or one decoder layer at a time (`collect_stats_layerwise`)."""
from __future__ import annotations

import contextlib

import numpy as np

from l2v.numerics import capture_inputs


class Stats:
    """Running per-input-channel statistics of many Linear inputs, over non-padding tokens only."""

    def __init__(self, keep_samples: int, n_batches: int, seed: int = 0):
        self.keep_samples, self.n_batches = keep_samples, n_batches
        self.rng = np.random.default_rng(seed)
        self.stats: dict[str, dict] = {}

    def seen(self, name: str, x, mask) -> None:
        import torch

        x = x.detach()
        x = x.reshape(-1, x.shape[-1])[mask].float()
        a = x.abs()
        st = self.stats.setdefault(name, {"amax": torch.zeros(x.shape[-1]), "sum_abs": torch.zeros(x.shape[-1]),
                                          "n": 0, "samples": []})
        st["amax"] = torch.maximum(st["amax"], a.amax(0))
        st["sum_abs"] += a.sum(0)
        st["n"] += x.shape[0]
        if self.keep_samples:
            take = self.rng.choice(x.shape[0], size=min(x.shape[0], max(1, self.keep_samples // self.n_batches + 1)),
                                   replace=False)
            st["samples"].append(x[torch.from_numpy(take)].numpy())

    def result(self) -> dict:
        out = {}
        for name, st in self.stats.items():
            rec = {"amax": st["amax"].numpy(), "mean_abs": (st["sum_abs"] / max(st["n"], 1)).numpy()}
            if self.keep_samples:
                rec["samples"] = np.concatenate(st["samples"])[:self.keep_samples]
            out[name] = rec
        return out


def _mask(b):
    import torch

    return torch.from_numpy(np.asarray(b["attention_mask"]).reshape(-1).astype(bool))


def collect_stats(model, batches: list, keep_samples: int = 0, seed: int = 0) -> dict:
    """{module name (as in the ONNX name scopes, e.g. "backbone.layers.0.mlp.down_proj"):
    {"amax": per-input-channel max |x|, "mean_abs": per-channel mean |x|, "samples": up to keep_samples
    random token rows of x}} over non-padding tokens only."""
    import torch

    st = Stats(keep_samples, len(batches), seed)
    current = {}
    from l2v.quantize.graph import HEAD_SCOPE

    linears = {n: m for n, m in model.named_modules()  # per-token inputs only: not the head after pooling
               if isinstance(m, torch.nn.Linear) and not n.startswith(HEAD_SCOPE)}
    with capture_inputs(linears, lambda name, x: st.seen(name, x, current["mask"])), torch.no_grad():
        for b in batches:
            current["mask"] = _mask(b)
            model(**{k: torch.from_numpy(b[k]) for k in b.keys()})
    return st.result()


def collect_stats_layerwise(layerwise, batches: list, keep_samples: int = 0, seed: int = 0) -> dict:
    """`collect_stats` on an `l2v.model.layerwise.LayerwiseModel`: hooks on one decoder layer at a time."""
    import torch

    st = Stats(keep_samples, len(batches), seed)
    masks = [_mask(b) for b in batches]

    @contextlib.contextmanager
    def observe(i, layer, current):
        linears = {f"backbone.layers.{i}.{n}": m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
        with capture_inputs(linears, lambda name, x: st.seen(name, x, masks[current["batch"]])):
            yield

    layerwise.run([{k: np.asarray(b[k]) for k in b.keys()} for b in batches], observe=observe)
    return st.result()
