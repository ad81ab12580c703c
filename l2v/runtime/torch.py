"""The `torch` backend: the artifact's merged weights (variant kind `torch`, `torch/`) in PyTorch, run by
one of two engines — `padded` (the exported module itself, `l2v.model.encoder.EmbeddingModel`) or
`packed` (the padding-free engine, `l2v.engine.PackedEncoder`; bf16 + Triton on CUDA, the default there).
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from l2v.errors import ArtifactError, InputError
from l2v.runtime.backend import Backend, RunOptions
from l2v.text.batch import Batch

ENGINES = ("padded", "packed")


def torch_dir(artifact, variant, root: Path | None = None) -> Path:
    from l2v.artifact.files import resolve

    if variant.kind != "torch" or variant.main is None:
        raise ArtifactError(f"variant of kind {variant.kind!r} holds no PyTorch weights")
    return resolve(root or artifact.root, variant.main.path).parent


def torch_variant(artifact, needed_by: str | None = None):
    """The artifact's `torch` variant (its merged weights), or an `ArtifactError` saying who needs it."""
    names = artifact.manifest.variants_of("torch")
    if not names:
        who = needed_by or "the torch backend"
        raise ArtifactError(f"artifact {str(artifact.root)!r} has no PyTorch weights (torch/), which {who} needs",
                            hint="re-export without --no-torch-weights" + ("" if needed_by else ", or use backend='onnx'"))
    return artifact.manifest.variants[names[0]]


def load_weights(artifact, dtype, needed_by: str | None = None, **kwargs):
    """The backbone from the torch variant (`AutoModel`, offline), with the adapter the export kept
    unmerged (facts.adapter_dir) applied again as LoRA side branches."""
    from transformers import AutoModel

    from l2v.model.load import quiet_loading

    variant = torch_variant(artifact, needed_by)
    artifact.check(variant)
    path = torch_dir(artifact, variant)
    try:
        with quiet_loading():  # no "Loading weights" bar from a library call
            model = AutoModel.from_pretrained(str(path), dtype=dtype, local_files_only=True, **kwargs).eval()
    except Exception as e:  # damaged files: OSError, ValueError, safetensors' SafetensorError, KeyError ...
        raise ArtifactError(f"cannot load the PyTorch weights in {str(path)!r}: {str(e).splitlines()[0][:200]}",
                            hint="the artifact's torch/ files are damaged; re-export it") from e
    check_shape(artifact, variant, model.config)
    adapter = variant.facts.get("adapter_dir")
    if adapter:
        from l2v.model.adapters import apply_unmerged

        model, _ = apply_unmerged(model, str(artifact.path(adapter)))
    return model


def load_head(artifact, dtype=None):
    """The head after pooling (graph.head: sentence-transformers Dense layers) from torch/head.safetensors,
    or None when the graph has none."""
    g = artifact.manifest.graph
    if not g.head:
        return None
    from l2v.model.head import WEIGHTS, load_head as load

    variant = torch_variant(artifact)
    return load(g.head, torch_dir(artifact, variant) / WEIGHTS, dtype).eval()
def check_shape(artifact, variant, config) -> None:
    """The weights must be the model the manifest describes, and `graph.dim` the width they were exported
    with (export records it in the torch variant's facts): an edited dim must not silently change the
    width of the vectors."""
    m, where = artifact.manifest, f"{variant.main.path.rsplit('/', 1)[0]}/config.json"
    hidden = getattr(config, "hidden_size", None)
    if hidden != m.model.hidden_size:
        raise ArtifactError(f"{where} has hidden_size {hidden}, l2v.json says {m.model.hidden_size}",
                            hint="the torch/ files belong to another model; re-export the artifact")
    recorded = variant.facts.get("dim")
    if recorded is not None and recorded != m.graph.dim:
        raise ArtifactError(f"l2v.json says graph.dim {m.graph.dim}, but its torch weights were exported for "
                            f"dim {recorded}", hint="the manifest was edited; re-export the artifact")


def load_encoder(artifact, dtype=None, needed_by: str | None = None):
    """The artifact's `EmbeddingModel` in PyTorch: its weights, pooling, head, normalisation, attention and dim."""
    import torch

    from l2v.model.encoder import EmbeddingModel

    g = artifact.manifest.graph
    backbone = load_weights(artifact, dtype or torch.float32, needed_by)
    return EmbeddingModel(backbone, g.pooling, g.normalize, g.attention == "causal", g.dim,
                          load_head(artifact)).eval()


class TorchBackend(Backend):
    """The model in PyTorch on padded batches; `open` picks the engine (padded, or packed)."""

    name = "torch"

    def __init__(self, model, device: str = "cpu", precision: str = "fp32"):
        self.model, self.device, self.precision = model, device, precision
        self._lock = threading.Lock()  # torch intra-op threads already use the cores; serialise callers

    @classmethod
    def open(cls, artifact, variant, options: RunOptions, root: Path | None = None) -> Backend:
        engine = options.engine or ("packed" if options.device == "cuda" else "padded")
        if engine not in ENGINES:
            raise InputError(f"engine {engine!r} is not supported", hint=f"use one of {', '.join(ENGINES)}")
        if options.device == "cuda":
            _require_cuda()
        if engine == "packed":
            return PackedBackend.open(artifact, variant, options, root)
        return cls(load_encoder(artifact).to(options.device), options.device)

    @classmethod
    def from_model(cls, model, device: str = "cpu", precision: str = "fp32") -> "TorchBackend":
        """Run an `EmbeddingModel` already in memory (export's reference, quantization candidates)."""
        return cls(model, device, precision)

    def run(self, batch: Batch) -> np.ndarray:
        import torch

        with self._lock, torch.inference_mode():
            args = {k: torch.from_numpy(batch[k]).to(self.device) for k in ("input_ids", "attention_mask", "pooling_mask")}
            return self.model(**args).float().cpu().numpy()

    def close(self) -> None:
        self.model = None


class PackedBackend(TorchBackend):
    """The padding-free engine: on CUDA in bf16 with the Triton kernel, on CPU in fp32 with the
    per-sequence torch attention (a reference path, not a fast one)."""

    @classmethod
    def open(cls, artifact, variant, options: RunOptions, root: Path | None = None) -> "PackedBackend":
        import torch

        from l2v.engine import PackedEncoder

        cuda = options.device == "cuda"
        g = artifact.manifest.graph
        backbone = load_weights(artifact, torch.bfloat16 if cuda else torch.float32).to(options.device)
        head = load_head(artifact)
        model = PackedEncoder(backbone, pooling=g.pooling, normalize=g.normalize, attention=g.attention,
                              attn_impl="triton" if cuda else "torch", dim=g.dim,
                              head=head.to(options.device) if head is not None else None)
        return cls(model, options.device, "bf16" if cuda else "fp32")

    def run(self, batch: Batch) -> np.ndarray:
        import torch

        ids, pooled, _ = batch.packed()
        with self._lock:
            return self.model([torch.from_numpy(i) for i in ids], [torch.from_numpy(p) for p in pooled]).float().cpu().numpy()


def _require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise InputError("device='cuda' was asked for, but this PyTorch has no usable CUDA device "
                         f"(torch {torch.__version__})", hint="use device='cpu', or install a CUDA build of torch")
