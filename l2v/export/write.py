"""Stages 2 and 3 of the export: the variants (ONNX graph(s), each validated; the torch weights), the
tokenizer, then the manifest — all into the writer's temporary directory."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from l2v.artifact import (AdapterRecord, FileRecord, Graph, Manifest, ModelInfo, SentenceTransformersInfo,
                          TokenizerInfo, Variant)

TORCH_DIR = "torch"


def validation_batches(pre, texts: list[str], batch: int = 4) -> list:
    """Unsorted batches of mixed lengths (so padding is exercised), then every text alone."""
    rows = pre.rows(texts)
    return [pre.pad(rows[i:i + batch]) for i in range(0, len(rows), batch)] + [pre.pad([r]) for r in rows]


def torch_reference(model, batches: list) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([model(**{k: torch.from_numpy(b[k]) for k in b.keys()}).numpy() for b in batches])


def write_onnx(built, tmp: Path, spec, dtypes: list[str], reference, batches, n_texts: int, step,
               verbose: bool) -> dict:
    """The graphs `dtypes` names, each validated against `reference`: fp32 exported from the model in
    memory (as before), fp16 converted from it (when fp32 is not asked for, from a scratch fp32 graph
    deleted after), bf16 exported from a bf16 copy of the model. An architecture that keeps its attention
    scores in fp32 (`Arch.fp32_scores`: Qwen2) has its fp16 graph exported from an fp16 copy as well."""
    import shutil

    from l2v.export.onnx_export import export_onnx
    from l2v.export.validate import validate_graph, validate_onnx
    from l2v.model.precision import precision_facts, wanted
    from l2v.quantize.onnx_methods import convert_fp16

    variants = {}
    scratch = tmp / ".scratch"
    traced_fp16 = "fp16" in dtypes and wanted(built.encoder.config, "fp16")  # else converted from fp32
    try:
        if "fp32" in dtypes or ("fp16" in dtypes and not traced_fp16):
            fp32_dir = tmp if "fp32" in dtypes else scratch
            fp32_dir.mkdir(exist_ok=True)
            step(f"exporting ONNX (opset {spec.opset}, dynamo exporter; the longest stage)")
            t = time.perf_counter()
            with step.ticker("exporting ONNX"):
                files = export_onnx(built.encoder, batches[0], fp32_dir / "model.onnx", spec, verbose)
            seconds = round(time.perf_counter() - t, 1)
            if "fp32" in dtypes:
                step(f"validating the fp32 graph against PyTorch on {len(batches)} batches")
                variants["fp32"] = Variant("onnx", "fp32", [FileRecord(f) for f in files],
                                           facts={"export_seconds": seconds},
                                           validation=validate_onnx(tmp / "model.onnx", reference, batches, "fp32",
                                                                    spec.output, n_texts, step.bar))
        if "fp16" in dtypes:
            if traced_fp16:
                step("exporting the fp16 graph (attention scores in fp32) and validating it")
                files = export_16bit(built.encoder, "fp16", batches[0], tmp / "model_fp16.onnx", spec, verbose, step)
            else:
                step("converting to fp16 and validating it")
                files = convert_fp16(fp32_dir / "model.onnx", tmp / "model_fp16.onnx")
            variants["fp16"] = Variant("onnx", "fp16", [FileRecord(f) for f in files],
                                       facts=precision_facts(built.encoder.config, "fp16"),
                                       validation=validate_onnx(tmp / "model_fp16.onnx", reference, batches,
                                                                "fp16", spec.output, n_texts, step.bar))
        if "bf16" in dtypes:
            step("exporting the bf16 graph and checking it")
            files = export_16bit(built.encoder, "bf16", batches[0], tmp / "model_bf16.onnx", spec, verbose, step)
            variants["bf16"] = Variant("onnx", "bf16", [FileRecord(f) for f in files],
                                       facts=precision_facts(built.encoder.config, "bf16"),
                                       validation=validate_graph(tmp / "model_bf16.onnx", reference, batches, "bf16",
                                                                 spec.output, n_texts, tmp, child=False))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {d: variants[d] for d in dtypes}


def export_16bit(encoder, dtype: str, sample, path: Path, spec, verbose: bool, step) -> list[str]:
    """Export a `dtype` (fp16 / bf16) copy of `encoder`, with fp32 attention scores where the architecture
    needs them (l2v.model.precision)."""
    import copy

    from l2v.export.onnx_export import export_onnx
    from l2v.model.fake import torch_dtype
    from l2v.model.precision import fp32_scores

    model = copy.deepcopy(encoder).to(torch_dtype(dtype))  # freed on return, before the graph is validated
    with fp32_scores(model, dtype), step.ticker(f"exporting ONNX ({dtype})"):
        return export_onnx(model, sample, path, spec, verbose)


def write_torch(backbone, tmp: Path, unmerged_adapter: str | None = None, head=None) -> Variant:
    """The `torch` variant: plain safetensors + config for `backend="torch"` (a GGUF source is dequantised
    on load, so its quantization_config is dropped). With an adapter kept unmerged, the weights are the
    base without it and its files are copied to torch/adapter/, applied again at load. A head (Dense
    layers) is stored as torch/head.safetensors (its layout is the manifest's graph.head)."""
    import shutil

    from l2v.model.adapters import ADAPTER_SUBDIR, CONFIG, WEIGHTS, base_state_dict

    out = tmp / TORCH_DIR
    out.mkdir(parents=True)
    state = {k: v.detach().contiguous() for k, v in base_state_dict(backbone).items()}
    save_weights(state, out / "model.safetensors")
    cfg = backbone.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["architectures"] = [type(backbone).__name__]
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    files = [f"{TORCH_DIR}/model.safetensors", f"{TORCH_DIR}/config.json"]
    facts = {}
    if head is not None:
        from l2v.model.head import WEIGHTS, save_head

        save_head(head, out / WEIGHTS)
        files.append(f"{TORCH_DIR}/{WEIGHTS}")
    if unmerged_adapter is not None:
        (out / ADAPTER_SUBDIR).mkdir()
        for name in (CONFIG, WEIGHTS):
            shutil.copy(Path(unmerged_adapter) / name, out / ADAPTER_SUBDIR / name)
            files.append(f"{TORCH_DIR}/{ADAPTER_SUBDIR}/{name}")
        facts["adapter_dir"] = f"{TORCH_DIR}/{ADAPTER_SUBDIR}"
    return Variant("torch", "fp32", [FileRecord(f) for f in files], facts=facts)


def save_weights(state: dict, path: Path) -> None:
    """safetensors' `save_file`, with its I/O failures (a Rust error type carrying "os error N") raised as
    the `OSError` they are, so a full disk is reported like any other write; readable by all like the
    other files (safetensors creates it 0600)."""
    import errno
    import os
    import re

    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(state, str(path), metadata={"format": "pt"})
    except SafetensorError as e:
        m = re.search(r"os error (\d+)", str(e))
        if m is None:
            raise
        code = int(m.group(1))
        raise OSError(code, os.strerror(code) if code in errno.errorcode else str(e), str(path)) from e
    os.chmod(path, 0o644)


def source_record(source) -> dict:
    from l2v.fileio import sha256_file

    rec = {"name": source.name, "kind": source.kind, "path": source.path, "gguf_file": source.gguf_file}
    target = source.checksum_target()
    if target is not None:
        rec["sha256"] = sha256_file(target)
    else:
        rec["sha256"] = {p.name: sha256_file(p) for p in sorted(Path(source.path).glob("*.safetensors"))}
    if source.st_root is not None:  # the Dense heads' weights too, keyed by their path in the folder
        from l2v.model.st import read_st_folder, weight_files

        root = Path(source.st_root)
        rec["st_root"] = str(root)
        rec["sha256"].update({str(p.relative_to(root)): sha256_file(p) for p in weight_files(read_st_folder(root))})
    return rec


def st_info(st) -> SentenceTransformersInfo | None:
    if st is None:
        return None
    return SentenceTransformersInfo(
        prompts={"query": "", "document": "", **st.prompts}, default_prompt_name=st.default_prompt_name,
        include_prompt=st.include_prompt, similarity_fn_name=st.similarity_fn_name, truncate_dim=st.truncate_dim,
        pooling_mode=st.pooling_st, modules=[dict(m) for m in st.modules], version=st.version)


def build_manifest(built, opts, spec, variants: dict, default: str, timings: dict) -> Manifest:
    from l2v.artifact.writer import versions

    cfg, tok = built.config, built.tokenizer
    return Manifest(
        source=source_record(built.source),
        adapters=[AdapterRecord(**{**a.summary(), "applied": how}) for a, how in zip(built.adapters, built.applied)],
        model=ModelInfo(cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers,
                        num_heads=getattr(cfg, "num_attention_heads", None),
                        intermediate_size=getattr(cfg, "intermediate_size", None),
                        context=getattr(cfg, "max_position_embeddings", None)),
        graph=Graph(attention="causal" if opts.causal else "bidirectional", pooling=opts.pooling,
                    normalize=opts.normalize, dim=built.dim, inputs=list(spec.inputs), output=spec.output,
                    opset=spec.opset, dynamic_axes={"0": spec.batch_axis, "1": spec.sequence_axis},
                    head=built.head_specs()),
        preset=opts.preset,
        tokenizer=TokenizerInfo(pad_token=tok.pad_token, pad_token_id=tok.pad_token_id,
                                padding_side=built.text_spec.padding_side, pad_token_source=built.pad_token_source,
                                bos_token=tok.bos_token, eos_token=tok.eos_token, embedding_rows=built.vocab_rows),
        text={k: v for k, v in built.text_spec.to_dict().items() if k != "pooling"},
        sentence_transformers=st_info(built.st),
        variants=variants, default_variant=default, versions=versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), timings=timings,
    )
