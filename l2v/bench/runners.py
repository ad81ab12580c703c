"""Everything the harness times, behind one shape: a `Runner` wraps a backend (`run(batch) -> [B, D]`).

hf:    the Hugging Face baseline: `AutoModel` from the artifact's torch weights (+ the adapter kept
       unmerged, if any), SDPA, made bidirectional by a padding-only 4-D boolean mask (causal artifacts:
       padding and causal), positions from the mask, the artifact's pooling and head (Dense layers of a
       sentence-transformers model) (fp32 on CPU, bf16 on CUDA). Written independently of
       `l2v.model.encoder`, so it also checks it.
torch: the torch backend, engine padded; packed: engine packed (CUDA only here).
ort:   the onnx backend (ONNX Runtime), one runner per ONNX variant in the manifest. (`ort` is this
       report's historical label for the onnx backend; `--backends onnx` is accepted too.)
ov:    the openvino backend, one runner per OpenVINO IR variant (`ov-fp32`, `ov-int8`, ...), when
       `openvino` is installed (else a skipped row naming the extra).
trt:   the TensorRT engine of each trt-* variant built on this machine (`l2v-export --trt` / `l2v-build-trt`),
       row precision = the variant name; and ONNX Runtime's TensorRT execution provider on the fp32 graph
       (precision "fp32") when `tensorrt` imports and onnxruntime has that provider.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field

import numpy as np

from l2v.errors import OptionalDependencyError
from l2v.runtime.backend import Backend, RunOptions, open_backend
from l2v.text.batch import Batch


@dataclass
class Runner:
    backend: str  # the row label: hf | torch | packed | ort | trt
    precision: str
    impl: Backend
    size_bytes: int | None
    dtype: str  # the arithmetic dtype, to pick the matmul peak: fp32 | bf16 | fp16 | int8
    note: str = ""
    holder: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.precision}"

    def run(self, arrays) -> np.ndarray:
        return self.impl.run(Batch.of(arrays))

    def close(self) -> None:
        self.impl.close()
        self.impl = None
        gc.collect()
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def files_bytes(artifact, variant) -> int:
    return sum(artifact.path(r.path).stat().st_size for r in variant.files)


def model_config(artifact) -> dict | None:
    """The backbone's config.json (from the torch weights), for FLOP counts; None without torch/."""
    import json

    names = artifact.manifest.variants_of("torch")
    if not names:
        return None
    main = artifact.manifest.variants[names[0]].main
    cfg = artifact.path(main.path).parent / "config.json"
    return json.loads(cfg.read_text()) if cfg.is_file() else None


class HFBaseline(Backend):
    name = "hf"

    def __init__(self, model, device: str, dim: int, mode: str, norm: bool, precision: str, causal: bool = False,
                 head=None):
        self.model, self.device, self.dim, self.mode, self.norm = model, device, dim, mode, norm
        self.precision, self.causal, self.head = precision, causal, head

    @classmethod
    def open(cls, artifact, variant=None, options: RunOptions | None = None, root=None) -> "HFBaseline":
        import torch

        from l2v.runtime.torch import load_weights

        from l2v.runtime.torch import load_head

        g = artifact.manifest.graph
        device = (options or RunOptions()).device
        precision = "bf16" if device.startswith("cuda") else "fp32"
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        model = load_weights(artifact, dtype, "the Hugging Face baseline", attn_implementation="sdpa").to(device)
        head = load_head(artifact)
        return cls(model, device, int(g.dim), g.pooling, bool(g.normalize), precision, g.attention == "causal",
                   head.to(device) if head is not None else None)

    def run(self, batch: Batch) -> np.ndarray:
        import torch

        from l2v.model.masks import config_is_causal
        from l2v.model.pooling import normalize, pool

        with torch.inference_mode():
            ids = torch.from_numpy(batch.input_ids).to(self.device)
            am = torch.from_numpy(batch.attention_mask).to(self.device)
            pm = torch.from_numpy(batch.pooling_mask).to(self.device)
            seq = ids.shape[1]
            if config_is_causal(self.model.config) == self.causal:
                mask = am  # the config says what we run (e.g. EmbeddingGemma): HF builds its own masks, sliding too
            else:  # LLM2Vec-style: a decoder made bidirectional; every query sees every real key
                mask = am.bool()[:, None, None, :].expand(-1, 1, seq, -1)
                if self.causal:
                    mask = mask & torch.ones(seq, seq, dtype=torch.bool, device=self.device).tril()
            pos = (am.cumsum(-1) - 1).clamp(min=0)
            hidden = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
            emb = pool(hidden, am, pm, self.mode)
            if self.head is not None:
                emb = self.head(emb.float())
            emb = emb[:, :self.dim].float()
            return (normalize(emb) if self.norm else emb).cpu().numpy()

    def close(self) -> None:
        self.model = None


def open_hf(artifact, device: str) -> Runner:
    b = HFBaseline.open(artifact, options=RunOptions(device))
    size = sum(p.numel() * p.element_size() for p in b.model.parameters())
    return Runner("hf", b.precision, b, size, b.precision, "transformers AutoModel, SDPA, padded")


def open_l2v_torch(artifact, device: str, engine: str = "padded") -> Runner:
    """engine "padded" (label "torch", fp32) or "packed" (label "packed": the padding-free engine)."""
    from l2v.runtime.torch import torch_variant

    variant = torch_variant(artifact)
    b = open_backend(artifact, variant, RunOptions(device, engine=engine))
    return Runner("torch" if engine == "padded" else "packed", b.precision, b, files_bytes(artifact, variant),
                  b.precision)


def open_ort(artifact, variant: str, device: str, threads: int | None, providers=None, label: str = "ort") -> Runner:
    """A file-backed variant through its kind's backend (onnx, or openvino with label "ov")."""
    v = artifact.variant(variant)
    b = open_backend(artifact, v, RunOptions(device, threads, tuple(providers) if providers else None))
    return Runner(label, variant, b, files_bytes(artifact, v), str(v.dtype))


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


def trt_engine_variants(artifact) -> list[str]:
    """The trt-* variants of the artifact that have a built engine."""
    return [n for n in artifact.manifest.variants_of("trt") if (artifact.variant(n).facts or {}).get("engine")]


def open_trt_engine(artifact, variant: str) -> Runner:
    """A trt-* variant's TensorRT engine (an engine from another GPU/TensorRT is an error naming both)."""
    v = artifact.variant(variant)
    b = open_backend(artifact, v, RunOptions("cuda", engine="tensorrt"))
    engine = artifact.path(v.facts["engine"]["engine"])
    return Runner("trt", variant, b, engine.stat().st_size, "int8" if v.dtype in ("int8", "fp8") else str(v.dtype),
                  f"TensorRT {v.facts['engine'].get('tensorrt')} engine, {v.dtype}")


def open_trt(artifact, threads: int | None) -> Runner:
    if trt_unavailable_reason():
        raise OptionalDependencyError("tensorrt", "trt", "the trt backend")
    return open_ort(artifact, "fp32", "cuda", threads,
                    providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"], label="trt")


def artifact_preprocessor(artifact, max_length: int | None = None):
    """The artifact's own preprocessing, optionally truncating shorter than the artifact does."""
    return artifact.preprocessor(max_length)
