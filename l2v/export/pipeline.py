"""`export_model`: MODEL (+ adapters) -> validated artifact directory. The CLI maps flags onto it.

Stages: resolve -> load -> merge adapters -> wrap (bidirectional mask, pooling) -> export ONNX ->
validate (fp32, then fp16) -> manifest -> atomic move into place.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np

from l2v.errors import InputError

DTYPE_CHOICES = ("fp32", "fp16")


@dataclass
class ExportOptions:
    adapters: list[str] = field(default_factory=list)
    unmerged_last: bool = False  # apply the last adapter as a LoRA side branch instead of merging it
    pooling: str | None = None  # None: the preset's (l2v.text.presets)
    dtype: str = "fp32"
    max_length: int = 512
    normalize: bool = False
    dim: int | None = None
    causal: bool | None = None  # None: the preset's
    preset: str | None = None  # llm2vec (default), e5, prompteol, pcot, ke, metaeol
    template: str | None = None  # overrides the preset's template ({text}, optional {instruction})
    chat_template: str = "auto"
    text_mode: str = "clean"  # or "compat": llm2vec 0.2.3 bug-for-bug (docs/text.md)
    doc_max_length: int | None = -1  # -1: the preset's; 0/None: off
    overwrite: bool = False
    opset: int = 18
    torch_weights: bool = True
    tokenizer: str | None = None
    texts: list[str] | None = None  # validation texts; default: the packaged real sentences
    demo: bool = False
    progress: bool = True
    verbose: bool = False
    quant: list[str] = field(default_factory=list)  # l2v.quantize methods, added after fp32 validates
    min_recall: float | None = None
    calib: str | None = None
    eval: str | None = None

    def check(self) -> None:
        from l2v.text.presets import resolve_export

        self.preset, self.pooling, self.causal = resolve_export(
            self.preset, self.pooling, self.causal, self.template, self.chat_template, self.text_mode)
        if self.dtype not in DTYPE_CHOICES:
            raise InputError(f"--dtype {self.dtype!r} is not supported", hint=f"use one of {', '.join(DTYPE_CHOICES)}")
        if not isinstance(self.max_length, int) or self.max_length < 2:
            raise InputError(f"--max-length {self.max_length!r} must be an integer >= 2")
        if self.unmerged_last and not self.adapters:
            raise InputError("--keep-last-adapter-unmerged needs at least one --adapter",
                             hint="pass the adapter(s) to apply, or drop the flag")
        if self.unmerged_last and self.quant:
            raise InputError("--quant cannot be combined with --keep-last-adapter-unmerged",
                             hint="quantize a merged export (drop --keep-last-adapter-unmerged)")


def default_texts() -> list[str]:
    text = resources.files("l2v.data").joinpath("validation.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


class _Progress:
    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.step, self.t0 = enabled, total, 0, time.perf_counter()

    def __call__(self, what: str) -> None:
        self.step += 1
        if self.enabled:
            print(f"[{self.step}/{self.total}] {what} (t={time.perf_counter() - self.t0:.0f}s)", file=sys.stderr)


def _validation_batches(pre, texts: list[str], batch: int = 4) -> list[dict]:
    """Unsorted batches of mixed lengths (so padding is exercised), then every text alone."""
    rows = pre.rows(texts)
    mixed = [pre.pad(rows[i:i + batch]) for i in range(0, len(rows), batch)]
    alone = [pre.pad([r]) for r in rows]
    return mixed + alone


def _torch_reference(model, batches: list[dict]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([model(**{k: torch.from_numpy(v) for k, v in b.items()}).numpy() for b in batches])


def _source_record(source) -> dict:
    from l2v.model.source import sha256_file

    rec = {"name": source.name, "kind": source.kind, "path": source.path, "gguf_file": source.gguf_file}
    target = source.checksum_target()
    if target is not None:
        rec["sha256"] = sha256_file(target)
    else:
        rec["sha256"] = {p.name: sha256_file(p) for p in sorted(Path(source.path).glob("*.safetensors"))}
    return rec


def _save_torch_weights(backbone, out: Path, unmerged=None) -> None:
    """Plain safetensors + config (a GGUF source is dequantised on load, so drop its quantization_config).
    `unmerged`: the AdapterInfo kept unmerged; the weights are then the base without it (LoRA branches
    dropped) and its files are copied, as given, to `out/adapter/`, applied again at load."""
    import shutil

    from safetensors.torch import save_file

    from l2v.model.adapters import ADAPTER_SUBDIR, CONFIG, WEIGHTS, base_state_dict

    out.mkdir(parents=True)
    state = {k: v.detach().contiguous() for k, v in base_state_dict(backbone).items()}
    if unmerged is not None:
        (out / ADAPTER_SUBDIR).mkdir()
        for name in (CONFIG, WEIGHTS):
            shutil.copy(Path(unmerged.path) / name, out / ADAPTER_SUBDIR / name)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg = backbone.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["architectures"] = [type(backbone).__name__]
    (out / "config.json").write_text(json.dumps(cfg, indent=2))


def export_model(model: str | None, out, **kwargs) -> Path:
    """Export and validate; returns the artifact path. Raises `L2VError` subclasses on bad input."""
    with _hf_progress(kwargs.get("progress", True)):
        return _export_model(model, out, **kwargs)


@contextlib.contextmanager
def _hf_progress(enabled: bool):
    """--quiet: silence transformers' and the GGUF de-quantiser's progress bars (plain tqdm on stderr)
    for the duration of the export only; the previous state is restored. Errors still propagate."""
    from transformers.utils import logging as hf_logging

    if enabled:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _export_model(model: str | None, out, **kwargs) -> Path:
    from l2v.export.artifact import ArtifactWriter, check_out_dir, versions
    from l2v.export.onnx_export import convert_fp16, export_onnx
    from l2v.export.spec import OnnxExportSpec
    from l2v.export.validate import validate_onnx
    from l2v.model.adapters import ADAPTER_SUBDIR, merge_adapters, merge_all_but_last
    from l2v.model.encoder import EmbeddingModel
    from l2v.model.load import load
    from l2v.model.source import resolve_model
    from l2v.text import Preprocessor
    from l2v.text.presets import adapter_base_names, build_text_spec

    if out is None:
        raise InputError("--out is required", hint="name the artifact directory to create")
    opts = ExportOptions(**kwargs)
    opts.check()
    out = Path(out)
    check_out_dir(out, opts.overwrite)
    spec = OnnxExportSpec(opset=opts.opset)
    step = _Progress(opts.progress, 6 + (opts.dtype == "fp16"))
    t0 = time.perf_counter()

    step("resolving and loading the model")
    source = resolve_model(model, demo=opts.demo)
    loaded = load(source, "fp32", opts.adapters, opts.tokenizer)
    if opts.unmerged_last:
        step(f"merging {len(opts.adapters) - 1} adapter(s), applying the last unmerged")
        backbone, adapter_infos = merge_all_but_last(loaded.model, opts.adapters)
    else:
        step(f"merging {len(opts.adapters)} adapter(s)")
        backbone, adapter_infos = merge_adapters(loaded.model, opts.adapters)
    applied = ["merged"] * len(adapter_infos)
    if opts.unmerged_last:
        applied[-1] = "unmerged"
    encoder = EmbeddingModel(backbone, opts.pooling, opts.normalize, opts.causal, opts.dim).eval()
    text_spec = build_text_spec(opts.preset, opts.pooling, opts.max_length, opts.template, opts.chat_template,
                                opts.text_mode, opts.doc_max_length, backbone.config.model_type,
                                [source.name, *adapter_base_names(opts.adapters)])
    loaded.tokenizer.padding_side = text_spec.padding_side
    pre = Preprocessor(loaded.tokenizer, text_spec)
    texts = opts.texts or default_texts()
    batches = _validation_batches(pre, texts)
    reference = _torch_reference(encoder, batches)

    with ArtifactWriter(out, opts.overwrite) as writer:
        step(f"exporting ONNX (opset {spec.opset}, dynamo)")
        t_export = time.perf_counter()
        variants = {"fp32": export_onnx(encoder, batches[0], writer.tmp / "model.onnx", spec, opts.verbose)}
        variants["fp32"].update(dtype="fp32", export_seconds=round(time.perf_counter() - t_export, 1))
        step("validating fp32 against PyTorch")
        variants["fp32"]["validation"] = validate_onnx(writer.tmp / "model.onnx", reference, batches, "fp32", spec.output, len(texts) * pre.views)
        if opts.dtype == "fp16":
            step("converting and validating fp16")
            variants["fp16"] = convert_fp16(writer.tmp / "model.onnx", writer.tmp / "model_fp16.onnx")
            variants["fp16"]["dtype"] = "fp16"
            variants["fp16"]["validation"] = validate_onnx(
                writer.tmp / "model_fp16.onnx", reference, batches, "fp16", spec.output, len(texts) * pre.views)
        step("writing tokenizer, weights and manifest")
        loaded.tokenizer.save_pretrained(str(writer.tmp))
        if opts.torch_weights:
            _save_torch_weights(backbone, writer.tmp / "torch", adapter_infos[-1] if opts.unmerged_last else None)
        cfg = backbone.config
        tok = loaded.tokenizer
        writer.write_manifest({
            "format": "l2v-artifact",
            "source": _source_record(source),
            "adapters": [{**a.summary(), "applied": how} for a, how in zip(adapter_infos, applied)],
            "adapters_merged": "unmerged" not in applied,
            "architecture": cfg.model_type,
            "hidden_size": cfg.hidden_size,
            "num_layers": cfg.num_hidden_layers,
            "attention": "causal" if opts.causal else "bidirectional",
            "pooling": opts.pooling,
            "preset": opts.preset,
            "normalize": opts.normalize,
            "dim": encoder.dim,
            "max_length": opts.max_length,
            "tokenizer": {"pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id,
                          "pad_token_source": loaded.pad_token_source, "padding_side": text_spec.padding_side,
                          "bos_token": tok.bos_token, "eos_token": tok.eos_token},
            "text": text_spec.to_dict(),
            "export": spec.to_dict(),
            "variants": variants,
            "default_variant": opts.dtype,
            "torch": ({"dir": "torch", "dtype": "fp32", "adapter": ADAPTER_SUBDIR if opts.unmerged_last else None}
                      if opts.torch_weights else None),
            "versions": versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "export_seconds_total": round(time.perf_counter() - t0, 1),
        })
        if opts.quant:  # gated variants; a refusal raises here and nothing is committed
            from l2v.quantize import quantize_artifact

            quantize_artifact(writer.tmp, opts.quant, calib=opts.calib, eval=opts.eval,
                              min_recall=opts.min_recall, progress=opts.progress)
        writer.commit()
    step(f"done: {out}")
    return out.resolve()
