"""Inference backends behind `Encoder`: ONNX Runtime (CPU, or CUDA EP with onnxruntime-gpu) and PyTorch."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from l2v.errors import ArtifactError, InputError

BACKENDS = ("onnx", "torch")
ENGINES = ("padded", "packed")


class OnnxBackend:
    """One `InferenceSession`; ORT's `run` is safe to call from several threads."""

    def __init__(self, path: Path, output: str, device: str = "cpu", providers=None, threads: int | None = None):
        import onnxruntime as ort

        from l2v.export.validate import ort_session

        if not path.is_file():
            raise ArtifactError(f"the artifact lacks {path.name}", hint="re-export it")
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if device == "cuda":
                if "CUDAExecutionProvider" not in ort.get_available_providers():
                    from l2v.errors import OptionalDependencyError

                    raise OptionalDependencyError("onnxruntime-gpu", "gpu", "device='cuda' with the onnx backend")
                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self.session = ort_session(path, providers, threads)
        self.output = output
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output], {k: arrays[k] for k in self.inputs})[0]


def load_torch_weights(root: Path, manifest: dict, dtype, needed_by: str | None = None, **kwargs):
    """The backbone from the artifact's torch/ (`AutoModel`), with the adapter the export kept unmerged
    (torch/adapter/, manifest torch.adapter) applied again as LoRA side branches. `needed_by` names the
    caller in the error an artifact without torch/ gets (default: the torch backend)."""
    from transformers import AutoModel

    info = manifest.get("torch")
    if not info or not (root / info["dir"]).is_dir():
        if needed_by:
            raise ArtifactError(f"artifact {str(root)!r} has no PyTorch weights (torch/), which {needed_by} needs",
                                hint="re-export without --no-torch-weights")
        raise ArtifactError(f"artifact {str(root)!r} has no PyTorch weights",
                            hint="re-export without --no-torch-weights, or use backend='onnx'")
    model = AutoModel.from_pretrained(str(root / info["dir"]), dtype=dtype, local_files_only=True, **kwargs).eval()
    if info.get("adapter"):
        from l2v.model.adapters import apply_unmerged

        model, _ = apply_unmerged(model, str(root / info["dir"] / info["adapter"]))
    return model


def load_torch_encoder(root: Path, manifest: dict, dtype, needed_by: str | None = None):
    """The artifact's `EmbeddingModel` in PyTorch (its pooling, normalisation, attention and dim)."""
    from l2v.model.encoder import EmbeddingModel

    backbone = load_torch_weights(root, manifest, dtype, needed_by)
    return EmbeddingModel(backbone, manifest["pooling"], manifest["normalize"], manifest["attention"] == "causal",
                          manifest["dim"]).eval()


class TorchBackend:
    """The model in PyTorch (padded batches, the exported module itself), from `torch/` (+ torch/adapter/)."""

    def __init__(self, root: Path, manifest: dict, device: str = "cpu"):
        import torch

        self.model = load_torch_encoder(root, manifest, torch.float32).to(device)
        self.device = device
        self._lock = threading.Lock()  # torch intra-op threads already use the cores; serialise callers

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with self._lock, torch.inference_mode():
            args = {k: torch.from_numpy(arrays[k]).to(self.device) for k in ("input_ids", "attention_mask", "pooling_mask")}
            return self.model(**args).float().cpu().numpy()


class PackedBackend:
    """The padding-free engine (`l2v.engine.PackedEncoder`): on CUDA in bf16 with the Triton kernel,
    on CPU in fp32 with the per-sequence torch attention (a reference path, not a fast one)."""

    def __init__(self, root: Path, manifest: dict, device: str = "cpu"):
        import torch

        from l2v.engine import PackedEncoder

        cuda = device == "cuda"
        backbone = load_torch_weights(root, manifest, torch.bfloat16 if cuda else torch.float32).to(device)
        self.model = PackedEncoder(backbone, pooling=manifest["pooling"], normalize=manifest["normalize"],
                                   attention=manifest["attention"], attn_impl="triton" if cuda else "torch",
                                   dim=manifest["dim"])
        self._lock = threading.Lock()

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        keep = arrays["attention_mask"].astype(bool)
        seqs = [torch.from_numpy(ids[m]) for ids, m in zip(arrays["input_ids"], keep)]
        pooled = [torch.from_numpy(p[m]) for p, m in zip(arrays["pooling_mask"], keep)]
        with self._lock:
            return self.model(seqs, pooled).float().cpu().numpy()


def make_backend(root: Path, manifest: dict, backend: str, device: str, variant: str | None, providers, threads,
                 engine: str | None = None):
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r} is not supported", hint=f"use one of {', '.join(BACKENDS)}")
    if device not in ("cpu", "cuda"):
        raise InputError(f"device {device!r} is not supported", hint="use 'cpu' or 'cuda'")
    if backend == "torch":
        engine = engine or ("packed" if device == "cuda" else "padded")
        if engine not in ENGINES:
            raise InputError(f"engine {engine!r} is not supported", hint=f"use one of {', '.join(ENGINES)}")
        if engine == "packed":
            return PackedBackend(root, manifest, device), "bf16" if device == "cuda" else "fp32"
        return TorchBackend(root, manifest, device), "fp32"
    variants = manifest["variants"]
    name = variant or manifest.get("default_variant", "fp32")
    if name not in variants:
        raise InputError(f"variant {name!r} is not in this artifact", hint=f"available: {', '.join(variants)}")
    output = manifest["export"]["output"]
    return OnnxBackend(root / variants[name]["file"], output, device, providers, threads), name
