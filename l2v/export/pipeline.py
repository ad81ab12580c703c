"""`export_model`: MODEL (+ adapters) -> validated artifact directory. The CLI maps flags onto it.

Stages: check every option (fail fast) -> build the encoder in memory (resolve, load, merge, wrap) ->
write the variants (ONNX export + validation, torch weights) -> the manifest -> quantized variants
(from the model already in memory) -> atomic move into place.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from l2v.errors import InputError
from l2v.export.options import DTYPE_CHOICES, ExportOptions, default_texts  # noqa: F401  (public names)


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled, self.step, self.t0 = enabled, 0, time.perf_counter()

    def __call__(self, what: str) -> None:
        self.step += 1
        if self.enabled:
            print(f"[{self.step}] {what} (t={time.perf_counter() - self.t0:.0f}s)", file=sys.stderr)


def export_model(model: str | None = None, out=None, *, adapters=(), unmerged_last: bool = False,
                 pooling: str | None = None, dtype: str | list = "fp32", max_length: int | None = None,
                 normalize: bool = False,
                 dim: int | None = None, causal: bool | None = None, preset: str | None = None,
                 template: str | None = None, chat_template: str = "auto", text_mode: str = "clean",
                 doc_max_length: int | None = -1, overwrite: bool = False, opset: int = 18,
                 torch_weights: bool | None = None, tokenizer: str | None = None, texts: list[str] | None = None,
                 demo: bool = False, progress: bool = True, verbose: bool = False, quant=(),
                 min_recall: float | None = None, calib=None, eval=None, stream: str = "auto",
                 max_memory_gb: float | None = None) -> Path:
    """Export MODEL (+ LoRA `adapters`, merged in order) and validate it; returns the artifact path.

    model: a local HF directory, a .gguf file, a hub id already in the local cache, or None/`demo` for the
    embedded SmolLM2. out: the artifact directory (refused if it exists, unless `overwrite`).
    pooling / causal / template / chat_template / text_mode / doc_max_length: the text recipe (default:
    the `preset`'s, see docs/text.md). dtype: the graph(s) written, each validated: "fp32" (default),
    "fp16" or "bf16" (only that graph, the default variant), or several ("fp32,fp16" or a list).
    max_length: tokens per text (default 512, or the model's context if shorter; more is refused).
    normalize / dim: L2 normalisation and Matryoshka truncation inside the graph. quant / min_recall /
    calib / eval: quantized variants gated on recall (docs/quantization.md). texts: validation texts
    (default: the packaged real sentences). torch_weights: also store the merged weights for
    backend="torch" (None: yes in memory, no when streamed). stream: "auto" (streamed, one tensor at a time,
    when the fp32 weights pass 2 GiB or would not fit in memory), "on", "off" (docs/scale.md).
    max_memory_gb: refuse a plan whose peak passes it (default: the memory available now).
    Raises `L2VError` subclasses on bad input, and `ResourceError` when the disk or memory cannot hold the
    plan; nothing is written then.
    """
    opts = ExportOptions(
        adapters=list(adapters) if isinstance(adapters, (list, tuple)) else adapters, unmerged_last=unmerged_last,
        pooling=pooling, dtype=dtype, max_length=max_length, normalize=normalize, dim=dim, causal=causal,
        preset=preset, template=template, chat_template=chat_template, text_mode=text_mode,
        doc_max_length=doc_max_length, overwrite=overwrite, opset=opset, torch_weights=torch_weights,
        tokenizer=tokenizer, texts=texts, demo=demo, progress=progress, verbose=verbose,
        quant=list(quant) if isinstance(quant, (list, tuple)) else [quant], min_recall=min_recall,
        calib=calib, eval=eval, stream=stream, max_memory_gb=max_memory_gb)
    if progress:
        return _export(model, out, opts)
    from l2v.model.load import quiet_loading

    with quiet_loading(silence_stderr=True):
        return _export(model, out, opts)


def _export(model, out, opts: ExportOptions) -> Path:
    from l2v.artifact import ArtifactWriter, check_out_dir, open_artifact
    from l2v.export.build import resolve_max_length
    from l2v.export.resources import plan_export
    from l2v.export.spec import OnnxExportSpec
    from l2v.export.write import build_manifest, validation_batches
    from l2v.model.load import load_config
    from l2v.model.source import resolve_model

    if out is None:
        raise InputError("--out is required", hint="name the artifact directory to create")
    opts.check()
    out = Path(out)
    check_out_dir(out, opts.overwrite)
    check_writable(out)
    spec = OnnxExportSpec(opset=opts.opset)
    step = _Progress(opts.progress)
    t0 = time.perf_counter()
    step("resolving the model")
    source = resolve_model(model, demo=opts.demo)
    config = load_config(source)
    opts.max_length = resolve_max_length(config, opts.max_length)
    texts = opts.texts or default_texts()
    quant_configs = opts.quant_plan.configs if opts.quant_plan else []
    plan = plan_export(config, opts.dtypes, quant_configs, _torch_weights(opts, None), opts.stream,
                       opts.max_memory_gb, out, n_tokens=len(texts) * opts.max_length, adapters=len(opts.adapters))
    step(f"plan: {plan.path} export ({plan.why}); about {plan.disk_bytes / 1e9:.1f} GB on disk, "
         f"peak ~{plan.peak[1] / 2**30:.1f} GiB at '{plan.peak[0]}'")
    streamed = plan.path == "stream"
    if streamed:
        _check_streamable(opts)
    torch_weights = _torch_weights(opts, plan.path)
    built = _build(source, config, opts, streamed, step)
    pre = built.preprocessor()
    batches = validation_batches(pre, texts)
    n_texts = len(texts) * pre.views
    step(f"computing the PyTorch reference on {len(texts)} texts" + (", layer by layer" if streamed else ""))
    reference = _reference(built, batches, streamed, opts.progress)
    with ArtifactWriter(out, opts.overwrite) as writer:
        variants = _write_graphs(built, writer.tmp, spec, opts, reference, batches, n_texts, streamed, step)
        step("writing the tokenizer, weights and manifest")
        built.tokenizer.save_pretrained(str(writer.tmp))
        if torch_weights:
            variants["torch"] = _write_torch(built, writer.tmp, opts, streamed)
        manifest = build_manifest(built, opts, spec, variants, opts.default_graph,
                                  {"export_seconds_total": round(time.perf_counter() - t0, 1)})
        manifest.timings["resource_plan"] = plan.to_dict()
        writer.write_manifest(manifest)
        if opts.quant:  # gated variants; a refusal raises here and nothing is committed
            from l2v.quantize.api import quantize_artifact

            step(f"quantizing: {', '.join(opts.quant_plan.names)}")
            quantize_artifact(writer.tmp, opts.quant, plan=opts.quant_plan,
                              torch_model=None if streamed else built.encoder,
                              layerwise=built.layerwise() if streamed else None,
                              progress=opts.progress, verify=False)
        writer.commit()
    step("verifying every file's checksum")
    open_artifact(out, verify=True)
    step(f"done: {out}")
    return out.resolve()


def _torch_weights(opts: ExportOptions, path: str | None) -> bool | None:
    """--torch-weights / --no-torch-weights, else: yes in memory, no when streamed unless a bnb variant
    (which runs on them) is asked for; None while the path is not chosen yet."""
    if opts.torch_weights is not None:
        return opts.torch_weights
    if path is None:
        return None
    if path == "memory":
        return True
    return any(c.method.startswith("bnb") for c in (opts.quant_plan.configs if opts.quant_plan else []))


def _check_streamable(opts: ExportOptions) -> None:
    """What the streamed path cannot do, refused before anything is loaded."""
    if opts.unmerged_last:
        raise InputError("--keep-last-adapter-unmerged needs the in-memory export, and this model is exported "
                         "streamed", hint="merge every adapter (drop the flag), or pass --stream off with memory "
                         "to spare")
    if opts.quant_plan:
        from l2v.quantize.plan import check_streamable

        check_streamable(opts.quant_plan)


def _build(source, config, opts, streamed: bool, step):
    if streamed:
        from l2v.export.stream import prepare

        return prepare(source, config, opts, step)
    from l2v.export.build import build_encoder

    return build_encoder(source, opts, step)


def _reference(built, batches, streamed: bool, progress: bool):
    if streamed:
        from l2v.export.stream import reference

        return reference(built, batches, progress)
    from l2v.export.write import torch_reference

    return torch_reference(built.encoder, batches)


def _write_graphs(built, tmp, spec, opts, reference, batches, n_texts, streamed: bool, step) -> dict:
    if streamed:
        from l2v.export.stream import write_graphs

        return write_graphs(built, tmp, spec, opts.dtypes, reference, batches, n_texts, step, opts.progress,
                            opts.verbose)
    from l2v.export.write import write_onnx

    return write_onnx(built, tmp, spec, opts.dtypes, reference, batches, n_texts, step, opts.verbose)


def _write_torch(built, tmp, opts, streamed: bool):
    if streamed:
        from l2v.export.stream import write_torch

        return write_torch(built, tmp, opts.default_graph, opts.progress)
    from l2v.export.write import write_torch

    unmerged = built.adapters[-1].path if built.applied and built.applied[-1] == "unmerged" else None
    return write_torch(built.backbone, tmp, unmerged)


def check_writable(out: Path) -> None:
    """The nearest existing ancestor of `out` must be a writable directory (checked before any work)."""
    import os

    from l2v.errors import ArtifactError

    parent = out.expanduser().resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ArtifactError(f"--out {str(out)!r} lies under {str(parent)!r}, which is a file",
                            hint="choose a directory path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArtifactError(f"cannot write --out {str(out)!r}: {str(parent)!r} is not writable",
                            hint="choose a writable location")
