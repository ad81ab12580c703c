"""Everything the harness times, behind one shape: `Runner.run(arrays) -> np.float32 [B, D]`.

hf:    the Hugging Face baseline: `AutoModel` from the artifact's `torch/` weights (+ the adapter kept
       unmerged, if any), SDPA, made bidirectional by a padding-only 4-D boolean mask, positions from the
       mask, the artifact's pooling (fp32 on CPU, bf16 on CUDA). Written independently of
       `l2v.model.encoder`, so it also checks it.
torch: `l2v.load(dir, backend="torch", engine="padded")`; packed: engine="packed" (CUDA only here).
ort:   `l2v.load(dir, backend="onnx", variant=...)`, one runner per variant in the manifest.
trt:   ONNX Runtime's TensorRT execution provider on the fp32 variant, when `tensorrt` imports.
"""
from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from l2v.errors import ArtifactError, OptionalDependencyError


@dataclass
class Runner:
    backend: str
    precision: str
    run: Callable[[dict], np.ndarray]
    size_bytes: int | None
    dtype: str  # the arithmetic dtype, to pick the matmul peak: fp32 | bf16 | fp16 | int8
    holder: list = field(default_factory=list)  # the objects to drop on close
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.precision}"

    def close(self) -> None:
        self.holder.clear()
        self.run = None
        gc.collect()
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def onnx_bytes(root: Path, file: str) -> int:
    """The graph file plus its external data (`<file>.data` or any sibling named in `<file>*.data`)."""
    main = root / file
    return main.stat().st_size + sum(p.stat().st_size for p in root.glob(f"{Path(file).name}*.data"))


def model_config(root: Path, manifest: dict) -> dict | None:
    info = manifest.get("torch")
    cfg = root / info["dir"] / "config.json" if info else None
    return json.loads(cfg.read_text()) if cfg is not None and cfg.is_file() else None


def artifact_preprocessor(root: Path, manifest: dict, max_length: int | None = None):
    """The artifact's own tokenizer and `TextSpec`, optionally truncating shorter than the artifact does."""
    from transformers import AutoTokenizer

    from l2v.text import Preprocessor, TextSpec

    tokenizer = AutoTokenizer.from_pretrained(str(root), local_files_only=True)
    tokenizer.pad_token = manifest["tokenizer"]["pad_token"]
    spec = TextSpec.from_dict(manifest["text"])
    tokenizer.padding_side = spec.padding_side
    if max_length is not None and max_length < spec.max_length:
        spec = replace(spec, max_length=max_length)
    return Preprocessor(tokenizer, spec)


def open_hf(root: Path, manifest: dict, device: str) -> Runner:
    import torch

    from l2v.model.pooling import normalize, pool
    from l2v.runtime.backends import load_torch_weights

    if manifest["attention"] == "causal":
        raise ArtifactError("the baseline is the bidirectional model; this artifact is causal")
    precision = "bf16" if device.startswith("cuda") else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = load_torch_weights(root, manifest, dtype, "the Hugging Face baseline",
                               attn_implementation="sdpa").to(device)  # + unmerged adapter
    dim, mode, norm = int(manifest["dim"]), manifest["pooling"], bool(manifest["normalize"])

    def run(arrays: dict) -> np.ndarray:
        with torch.inference_mode():
            ids = torch.from_numpy(arrays["input_ids"]).to(device)
            am = torch.from_numpy(arrays["attention_mask"]).to(device)
            pm = torch.from_numpy(arrays["pooling_mask"]).to(device)
            seq = ids.shape[1]
            mask = am.bool()[:, None, None, :].expand(-1, 1, seq, -1)  # every query sees every real key
            pos = (am.cumsum(-1) - 1).clamp(min=0)
            hidden = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
            emb = pool(hidden, am, pm, mode)[:, :dim].float()
            return (normalize(emb) if norm else emb).cpu().numpy()

    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return Runner("hf", precision, run, size, precision, [model], "transformers AutoModel, SDPA, padded")


def _arrays_fn(enc) -> Callable[[dict], np.ndarray]:
    return lambda a: enc.run_arrays(a["input_ids"], a["attention_mask"], a["pooling_mask"])


def open_l2v_torch(root: Path, device: str, engine: str = "padded") -> Runner:
    """engine "padded" (backend name "torch", fp32) or "packed" (backend name "packed": the padding-free
    engine, bf16 on CUDA)."""
    import l2v

    enc = l2v.load(root, backend="torch", device=device, engine=engine)
    size = dir_bytes(root / enc.manifest["torch"]["dir"])
    name = "torch" if engine == "padded" else "packed"
    return Runner(name, enc.variant, _arrays_fn(enc), size, enc.variant, [enc])


def open_ort(root: Path, manifest: dict, variant: str, device: str, threads: int | None,
             providers=None, backend: str = "ort") -> Runner:
    import l2v

    enc = l2v.load(root, backend="onnx", device=device, variant=variant, providers=providers, threads=threads)
    info = manifest["variants"][variant]
    dtype = str(info.get("dtype", variant))
    return Runner(backend, variant, _arrays_fn(enc), onnx_bytes(root, info["file"]), dtype, [enc])


def runner_errors() -> tuple[type[BaseException], ...]:
    """What opening or smoke-running a runner may raise that means "this variant cannot run here"
    (reported as a skipped row); anything else is a bug and propagates."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, NotImplemented, RuntimeException

    from l2v.errors import L2VError

    return (L2VError, Fail, InvalidArgument, NotImplemented, RuntimeException)


def trt_unavailable_reason() -> str | None:
    """None when TensorRT can be used through ONNX Runtime, else why not."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as e:
        return f"tensorrt does not import ({e})"
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        return "tensorrt imports, but this onnxruntime has no TensorrtExecutionProvider (install onnxruntime-gpu)"
    return None


def open_trt(root: Path, manifest: dict, threads: int | None) -> Runner:
    if trt_unavailable_reason():
        raise OptionalDependencyError("tensorrt", "trt", "the trt backend")
    return open_ort(root, manifest, "fp32", "cuda", threads,
                    providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"], backend="trt")
