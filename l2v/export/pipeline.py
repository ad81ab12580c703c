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


def export_model(model: str | None = None, out=None, *, adapters=(), unmerged_last: bool = False,
                 pooling: str | None = None, dtype: str | list = "fp32", max_length: int | None = None,
                 normalize: bool = False,
                 dim: int | None = None, causal: bool | None = None, preset: str | None = None,
                 template: str | None = None, chat_template: str = "auto", text_mode: str | None = None,
                 doc_max_length: int | None = -1, overwrite: bool = False, opset: int = 18,
                 torch_weights: bool | None = None, tokenizer: str | None = None, texts: list[str] | None = None,
                 demo: bool = False, progress: bool = True, verbose: bool = False, quant=(),
                 min_recall: float | None = None, calib=None, eval=None, trt: bool = False,
                 trt_precisions=(), trt_shapes: str | None = None, stream: str = "auto",
                 max_memory_gb: float | None = None) -> Path:
    """Export MODEL (+ LoRA `adapters`, merged in order) and validate it; returns the artifact path.

    model: a local HF directory, a sentence-transformers folder (modules.json: its modules, prompts and
    settings become the recipe, docs/st.md), a .gguf file, a hub id already in the local cache, or
    None/`demo` for the embedded SmolLM2. out: the artifact directory (refused if it exists, unless `overwrite`).
    pooling / causal / template / chat_template / text_mode / doc_max_length: the text recipe (default:
    the `preset`'s, see docs/text.md; llm2vec's text_mode is "compat", reference-exact).
    dtype: the graph(s) written, each validated: "fp32" (default), "fp16" or "bf16" (only that graph, the
    default variant), or several ("fp32,fp16" or a list).
    max_length: tokens per text (default 512, or the model's context if shorter; more is refused).
    normalize / dim: L2 normalisation and Matryoshka truncation inside the graph. quant / min_recall /
    calib / eval: quantized variants gated on recall (docs/quantization.md). trt / trt_precisions /
    trt_shapes: `trt-<precision>` variants (TensorRT-ready graphs + build plans, gated like quant; engines
    built where TensorRT and a GPU exist, else one line says how; docs/tensorrt.md). texts: validation texts
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
        calib=calib, eval=eval, trt=trt, trt_precisions=list(trt_precisions or []), trt_shapes=trt_shapes,
        stream=stream, max_memory_gb=max_memory_gb)
    if progress:
        path, no_engines = _export(model, out, opts)
    else:
        from l2v.model.load import quiet_loading

        with quiet_loading(silence_stderr=True):
            path, no_engines = _export(model, out, opts)
    if no_engines:  # --trt without TensorRT or a GPU: one line, also with progress off
        from l2v.export.trt import notice

        print(notice(path, no_engines), file=sys.stderr)
    return path


def _export(model, out, opts: ExportOptions) -> tuple[Path, str | None]:
    """The export; returns (artifact path, why TensorRT engines were not built or None)."""
    from l2v.artifact import ArtifactWriter, check_out_dir, open_artifact
    from l2v.export.build import resolve_lengths
    from l2v.export.progress import Progress, stage_count
    from l2v.export.resources import plan_export
    from l2v.export.spec import OnnxExportSpec
    from l2v.export.write import build_manifest, validation_batches
    from l2v.model.load import load_config
    from l2v.model.source import probe_st, resolve_model

    if out is None:
        raise InputError("--out is required", hint="name the artifact directory to create")
    opts.st = probe_st(model, opts.demo)
    if (opts.demo or model is None) and opts.preset is None and opts.template is None:
        from l2v.model.demo import PRESET

        opts.preset = PRESET  # the recipe measured best on the untrained demo model (bench/demo_preset.py)
    opts.check()
    out = Path(out)
    check_out_dir(out, opts.overwrite)
    check_writable(out)
    spec = OnnxExportSpec(opset=opts.opset)
    step = Progress(opts.progress, stage_count(opts, opts.stream == "on"))  # auto: corrected once planned
    t0 = time.perf_counter()
    # The writer's temp dir is the lock on --out: taken before any work, so a second export to the same
    # --out fails at once, and a killed run's leftovers are swept (and reported) right here. A plan the
    # disk or memory cannot hold is refused before anything but that (removed) lock is written.
    with ArtifactWriter(out, opts.overwrite) as writer:
        step("resolving the model")
        source = resolve_model(model, demo=opts.demo)
        config = load_config(source)
        resolve_lengths(source, config, opts)
        texts = opts.texts or default_texts()
        quant_configs = opts.quant_plan.configs if opts.quant_plan else []
        plan = plan_export(config, opts.dtypes, quant_configs, _torch_weights(opts, None), opts.stream,
                           opts.max_memory_gb, out, n_tokens=len(texts) * opts.max_length,
                           adapters=len(opts.adapters))
        streamed = plan.path == "stream"
        step.total = stage_count(opts, streamed)
        step.say(f"plan: {plan.path} export ({plan.why}); about {plan.disk_bytes / 1e9:.1f} GB on disk, "
                 f"peak ~{plan.peak[1] / 2**30:.1f} GiB at '{plan.peak[0]}'")
        if streamed:
            _check_streamable(opts)
        torch_weights = _torch_weights(opts, plan.path)
        built = _build(source, config, opts, streamed, step)
        pre = built.preprocessor()
        batches = validation_batches(pre, texts)
        n_texts = len(texts) * pre.views
        step(f"computing the PyTorch reference on {len(texts)} texts ({len(batches)} batches)"
             + (", layer by layer" if streamed else ""))
        reference = _reference(built, batches, streamed, step)
        variants = _write_graphs(built, writer.tmp, spec, opts, reference, batches, n_texts, streamed, step)
        step("writing the tokenizer, weights and manifest")
        built.tokenizer.save_pretrained(str(writer.tmp))
        if torch_weights:
            variants["torch"] = _write_torch(built, writer.tmp, opts, streamed)
            variants["torch"].facts["dim"] = built.dim  # checked at load: an edited dim is refused
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
                              progress=opts.progress, verify=False,
                              speed=not streamed)  # timing a 7-8B graph maps all of it (the gate's run does not)
        no_engines = _trt_engines(writer.tmp, opts, step) if opts.trt else None
        writer.commit()
    step("verifying every file's checksum")
    open_artifact(out, verify=True)
    step.say(f"done: {out}")
    if opts.demo or model is None:
        from l2v.model.demo import NOTE

        step.say(f"note: {NOTE}")
    return out.resolve(), no_engines


def _trt_engines(tmp: Path, opts: ExportOptions, step) -> str | None:
    """Build the trt variants' engines into the artifact being written; returns why not when TensorRT or
    a GPU is missing (the export still succeeds: the graphs and plans are written)."""
    from l2v.trt.engine import unavailable_reason

    reason = unavailable_reason()
    if reason is None:
        from l2v.export.trt import build_engines

        step(f"building TensorRT engines: {', '.join(opts.trt_variants)}")
        build_engines(tmp, opts.trt_variants, step)
    return reason


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
    if opts.st is not None:
        raise InputError("a sentence-transformers folder is exported in memory (its modules and Dense head are "
                         "not on the streamed path), and this one would be streamed",
                         hint="pass --stream off, with --max-memory-gb if the machine has the memory")
    if opts.quant_plan:
        from l2v.quantize.plan import check_streamable

        check_streamable(opts.quant_plan)


def _build(source, config, opts, streamed: bool, step):
    if streamed:
        from l2v.export.stream import prepare

        return prepare(source, config, opts, step)
    from l2v.export.build import build_encoder

    return build_encoder(source, opts, step)


def _reference(built, batches, streamed: bool, step):
    if streamed:
        from l2v.export.stream import reference

        return reference(built, batches, step.enabled)
    from l2v.export.write import torch_reference

    return torch_reference(built.encoder, step.bar(batches, "reference"))


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
    return write_torch(built.backbone, tmp, unmerged, getattr(built.encoder, "head", None))


def check_writable(out: Path) -> None:
    """The nearest existing ancestor of `out` must be a directory we can really write in (checked before any
    work; a read-only mount or a full quota is named with the OS's words)."""
    from l2v.errors import ArtifactError
    from l2v.fileio import probe_writable

    parent = out.expanduser().resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ArtifactError(f"--out {str(out)!r} lies under {str(parent)!r}, which is a file: Not a directory "
                            "[ENOTDIR]", hint="choose a directory path")
    probe_writable(parent, f"cannot write --out {str(out)!r} in {str(parent)!r}")
