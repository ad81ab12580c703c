"""The `EmbeddingModel` computed layer by layer from a weight source: one decoder layer in memory at a time.

The backbone is built on the meta device; only what sits outside the decoder layers gets real fp32 weights
(the final norm, rotary and other non-persistent buffers) plus the embedding rows the batches use. A first
pass runs the backbone's own forward with every decoder layer replaced by a recorder, which captures the
exact arguments each layer receives (masks per layer type, position embeddings, ...) and the embedded
input; then each layer is materialised in fp32, every batch goes through it, and it is freed before the
next. The arithmetic is the in-memory model's, op for op (equal bitwise on the tiny models:
tests/export/test_stream_export.py), for every architecture transformers builds this way.

Used as the export's validation reference and for calibration (activation statistics, layer sensitivity)
when the model does not fit in memory.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

EMBED = "embed_tokens.weight"
ROW_BLOCK_BYTES = 64 << 20
MMAP_THRESHOLD = 1 << 20
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def mmap_large_allocations() -> None:
    """glibc: serve every allocation of >= 1 MiB with its own mmap, returned to the system when freed.
    By default glibc raises its mmap threshold to the size of each mmapped block freed (up to 32 MiB), so a
    freed layer's weights and activations of that size land in the main heap afterwards, which fragments and
    is not given back: the peak RSS of calibration and of the layer ranking grew with every layer. With a fixed
    threshold it stays flat in depth. Process-wide; a no-op where libc is not glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass


class _Recorder(torch.nn.Module):
    """Stands in for decoder layer `i` during the recording pass: keeps its arguments (and layer 0's input,
    the embedded batch) in `sink`, returns the hidden state unchanged."""

    def __init__(self, i: int, sink: dict):
        super().__init__()
        self.i, self.sink = i, sink

    def forward(self, hidden, *args, **kwargs):
        self.sink[self.i] = (args, kwargs)
        if self.i == 0:
            self.sink["hidden"] = hidden
        return hidden


def materialize(module, prefix: str, weights) -> None:
    """Give a meta-device module real fp32 parameters from `weights` (names under `prefix`)."""
    module.to_empty(device="cpu")
    state = {n: weights.get(f"{prefix}{n}", torch.float32) for n, _ in module.named_parameters()}
    module.load_state_dict(state, strict=False, assign=True)


class LayerwiseModel:
    """`run(batches)` -> float32 `[rows, dim]`, as `EmbeddingModel(backbone).forward` on each batch."""

    def __init__(self, config, weights, pooling: str = "mean", normalize: bool = False, causal: bool = False,
                 dim: int | None = None, attn_implementation: str | None = None):
        import copy

        from transformers import AutoModel

        from l2v.model.fake import real_buffers
        from l2v.model.pooling import check_pooling

        mmap_large_allocations()
        self.weights, self.causal = weights, bool(causal)
        self.pooling, self.normalize = check_pooling(pooling), bool(normalize)
        with torch.device("meta"):
            self.backbone = AutoModel.from_config(copy.deepcopy(config), dtype=torch.float32,
                                                  attn_implementation=attn_implementation).eval()
        self.config = self.backbone.config
        self.dim = dim or self.config.hidden_size
        real_buffers(self.backbone)
        self.layers = list(self.backbone.layers)
        for name, mod in self.backbone.named_children():
            if name not in ("layers", "embed_tokens") and any(True for _ in mod.parameters()):
                materialize(mod, f"{name}.", weights)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def _embedding(self, ids: np.ndarray):
        """fp32 rows of the embedding for the sorted unique `ids`, read in row blocks."""
        rows, width = self.weights.shape(EMBED)
        out = torch.empty((len(ids), width), dtype=torch.float32)
        step = max(1, ROW_BLOCK_BYTES // (width * 4))
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            sel = np.nonzero((ids >= start) & (ids < stop))[0]
            if sel.size:
                block = self.weights.get_rows(EMBED, start, stop, torch.float32)
                out[torch.from_numpy(sel)] = block[torch.from_numpy(ids[sel] - start)]
        return out

    def prepare(self, batches: list) -> tuple[list, list]:
        """(embedded hidden states per batch, each layer's recorded arguments per batch)."""
        from l2v.model.masks import build_masks, position_ids_from_mask

        ids = np.unique(np.concatenate([np.asarray(b["input_ids"]).reshape(-1) for b in batches]))
        emb = self.backbone.embed_tokens
        emb.weight = torch.nn.Parameter(self._embedding(ids), requires_grad=False)
        # the table now holds only the used rows: the pad id (Qwen2's 151643; a gradient-only setting) must not
        # index it
        padding_idx, emb.padding_idx = emb.padding_idx, None
        real = self.backbone.layers
        sinks = [dict() for _ in batches]
        hidden, calls = [], []
        try:
            for b, sink in zip(batches, sinks):
                self.backbone.layers = torch.nn.ModuleList([_Recorder(i, sink) for i in range(len(real))])
                mask = torch.from_numpy(np.asarray(b["attention_mask"]))
                remapped = torch.from_numpy(np.searchsorted(ids, np.asarray(b["input_ids"])))
                with torch.no_grad():
                    self.backbone(input_ids=remapped, attention_mask=build_masks(self.config, mask, torch.float32,
                                                                                 self.causal),
                                  position_ids=position_ids_from_mask(mask), use_cache=False)
                hidden.append(sink.pop("hidden"))
                calls.append(sink)
        finally:
            self.backbone.layers = real
            emb.padding_idx = padding_idx
            emb.weight = torch.nn.Parameter(torch.empty(emb.weight.shape, device="meta"), requires_grad=False)
        return hidden, calls

    def layer(self, i: int):
        """Decoder layer `i` with real fp32 weights; call `release(i)` when done with it."""
        materialize(self.layers[i], f"layers.{i}.", self.weights)
        return self.layers[i]

    def release(self, i: int) -> None:
        self.layers[i].to("meta")

    @staticmethod
    def call(layer, hidden, recorded: dict, i: int):
        args, kwargs = recorded[i]
        with torch.no_grad():
            out = layer(hidden, *args, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    def finish(self, hidden: list, batches: list) -> np.ndarray:
        """Final norm, pooling, Matryoshka cut and normalisation, as `EmbeddingModel.forward`."""
        from l2v.model.pooling import normalize as l2norm
        from l2v.model.pooling import pool

        out = []
        with torch.no_grad():
            for h, b in zip(hidden, batches):
                mask = torch.from_numpy(np.asarray(b["attention_mask"]))
                pmask = torch.from_numpy(np.asarray(b["pooling_mask"]))
                e = pool(self.backbone.norm(h), mask, pmask, self.pooling)[:, : self.dim].float()
                out.append((l2norm(e) if self.normalize else e).numpy())
        return np.concatenate(out)

    def run(self, batches: list, observe=None, progress=None) -> np.ndarray:
        """Every batch through layer i before layer i+1. `observe(i, layer, current)`: a context manager
        entered while layer i runs (calibration hooks); `current["batch"]` is the index of the batch going
        through it. `progress(i, n)` after each layer."""
        hidden, calls = self.prepare(batches)
        current = {}
        for i in range(self.num_layers):
            layer = self.layer(i)
            try:
                with observe(i, layer, current) if observe else nullcontext():
                    for j in range(len(batches)):
                        current["batch"] = j
                        hidden[j] = self.call(layer, hidden[j], calls[j], i)
            finally:
                self.release(i)
            if progress:
                progress(i + 1, self.num_layers)
        return self.finish(hidden, batches)
