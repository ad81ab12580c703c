"""The streamed export path, for models whose weights do not fit in memory (7-8B on a 24 GiB machine).

Stage 1 `prepare(source, config, opts)`: tokenizer, text spec, and the merged weight source (checkpoint
tensors + LoRA pairs merged one tensor at a time, l2v.model.merge) — no model in memory.
Stage 2 `write_graphs(...)`: per graph dtype, the graph traced with fake weights (l2v.export.stream_graph),
its weights streamed into external data, then validated in an ONNX Runtime child process against the
PyTorch reference computed layer by layer (l2v.model.layerwise).
`write_torch(...)`: the opt-in torch/ copy, written tensor by tensor.
The peak RSS of the whole export stays near one merged projection plus the Python baseline, flat in
depth (docs/scale.md); validation's ORT child maps the graph's weights (file-backed) and holds about
one fp32 weight matrix plus activations in anonymous memory (l2v.runtime.onnx.low_memory_options).
"""
from __future__ import annotations

import json
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from l2v.artifact import FileRecord, Variant, variant_file
from l2v.errors import ModelLoadError

TORCH_DIR = "torch"
ST_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


@dataclass
class StreamedModel:
    """What the manifest and validation need, without the model: config, tokenizer, text spec, weights."""
    config: object
    weights: object  # l2v.model.merge.MergedWeights
    tokenizer: object
    text_spec: object
    source: object
    adapters: list
    applied: list
    pad_token_source: str
    pooling: str
    normalize: bool
    causal: bool
    dim_arg: int | None

    @property
    def dim(self) -> int:
        return self.dim_arg or self.config.hidden_size

    st = None  # sentence-transformers folders are exported in memory (refused on this path)

    @property
    def vocab_rows(self) -> int:
        """Rows of the embedding matrix (ids past them are refused by the preprocessor)."""
        return int(self.config.vocab_size)

    def head_specs(self) -> list[dict]:
        return []  # sentence-transformers heads are exported in memory (refused on this path)

    def preprocessor(self):
        from l2v.text import Preprocessor

        return Preprocessor(self.tokenizer, self.text_spec)

    def layerwise(self):
        """The fp32 reference, one decoder layer in memory at a time (also calibration's model)."""
        from l2v.model.layerwise import LayerwiseModel

        return LayerwiseModel(self.config, self.weights, self.pooling, self.normalize, self.causal, self.dim_arg)


def prepare(source, config, opts, step) -> StreamedModel:
    """Stage 1 of the streamed path: tokenizer, text spec, the merged weight source (adapters checked)."""
    from l2v.model.checkpoint import open_weights
    from l2v.model.load import choose_pad_token, load_tokenizer
    from l2v.model.merge import MergedWeights
    from l2v.model.source import ModelSource
    from l2v.text.presets import adapter_base_names, build_text_spec

    step("opening the weights (tensor by tensor)")
    if opts.tokenizer:
        tokenizer = load_tokenizer(ModelSource("hf_dir", opts.tokenizer, name=opts.tokenizer))
    else:
        tokenizer = load_tokenizer(source, opts.adapters)
    pad_source = choose_pad_token(tokenizer)
    if len(tokenizer) > config.vocab_size:
        raise ModelLoadError(f"the tokenizer has {len(tokenizer)} tokens but the model embeds only "
                             f"{config.vocab_size}", hint="the tokenizer belongs to another model; pass the "
                             "right one with --tokenizer")
    weights = MergedWeights(open_weights(source, config), opts.adapters)
    text_spec = build_text_spec(opts.preset, opts.pooling, opts.max_length, opts.template, opts.chat_template,
                                opts.text_mode, opts.doc_max_length, config.model_type,
                                [source.name, *adapter_base_names(opts.adapters)])
    tokenizer.padding_side = text_spec.padding_side
    return StreamedModel(config, weights, tokenizer, text_spec, source, weights.infos, ["merged"] * len(weights.infos),
                         pad_source, opts.pooling, opts.normalize, opts.causal, opts.dim)


def _bar(total: int | None, what: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="tensor", disable=not enabled, file=sys.stderr, leave=False)


def reference(model: StreamedModel, batches: list, progress: bool):
    """The PyTorch fp32 embeddings of `batches`, computed layer by layer."""
    from tqdm import tqdm

    lw = model.layerwise()
    with tqdm(total=lw.num_layers, desc="reference", unit="layer", disable=not progress, file=sys.stderr,
              leave=False) as bar:
        return lw.run([b.as_dict() for b in batches], progress=lambda i, n: bar.update(1))


def write_graph(model: StreamedModel, tmp: Path, spec, dtype: str, step, progress: bool, verbose: bool):
    """Trace, bind and write one graph; returns (file names, facts)."""
    from l2v.export import stream_graph
    from l2v.model.precision import precision_facts

    timings: dict = {}
    step(f"tracing the {dtype} graph with fake weights (opset {spec.opset})")
    graph, names, transposed = stream_graph.build_graph(model.config, dtype, spec, model.pooling, model.normalize,
                                                        model.causal, model.dim_arg, timings, verbose)
    weight_bytes = stream_graph.bind_weights(graph, model.weights, dtype, transposed)
    name = "model.onnx" if dtype == "fp32" else variant_file(dtype)
    step(f"writing {name} + {name}.data ({weight_bytes / 1e9:.2f} GB, tensor by tensor)")
    t = time.perf_counter()
    with _bar(None, f"write {dtype}", progress) as bar:
        def tick(done: int, total: int) -> None:
            bar.total = total
            bar.update(1)

        files = stream_graph.save(graph, tmp / name, progress=tick)
    timings["write_s"] = round(time.perf_counter() - t, 1)
    facts = {"export": "streamed", "weights_bytes": weight_bytes, "weights_pre_transposed": len(transposed),
             "timings": timings, **precision_facts(model.config, dtype)}
    return files, facts


def write_graphs(model: StreamedModel, tmp: Path, spec, dtypes: list[str], ref, batches, n_texts: int, step,
                 progress: bool, verbose: bool) -> dict:
    """Every graph `dtypes` names, each validated in an ONNX Runtime child process against `ref`."""
    from l2v.export.validate import validate_graph

    variants = {}
    for dtype in dtypes:
        files, facts = write_graph(model, tmp, spec, dtype, step, progress, verbose)
        step(f"validating the {dtype} graph against the PyTorch reference (ONNX Runtime in a child process)")
        validation = validate_graph(tmp / files[0], ref, batches, dtype, spec.output, n_texts, tmp, child=True)
        variants[dtype] = Variant("onnx", dtype, [FileRecord(f) for f in files], validation=validation, facts=facts)
    return variants


def write_torch(model: StreamedModel, tmp: Path, dtype: str, progress: bool) -> Variant:
    """The torch/ variant (opt-in when streamed): one safetensors file written tensor by tensor (header
    from the shapes, embedding copied in row blocks) + config.json, in `dtype`."""
    from l2v.export.stream_graph import copy_rows, to_numpy, write_array
    from l2v.model.fake import torch_dtype

    out = tmp / TORCH_DIR
    out.mkdir(parents=True)
    tdtype = torch_dtype(dtype)
    names = model.weights.names()
    header, offset = {}, 0
    item = tdtype.itemsize
    for n in names:
        size = item
        for d in model.weights.shape(n):
            size *= int(d)
        header[n] = {"dtype": ST_DTYPE[str(tdtype).removeprefix("torch.")], "shape": list(model.weights.shape(n)),
                     "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(out / "model.safetensors", "wb") as fh, _bar(len(names), "write torch/", progress) as bar:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for n in names:
            if len(model.weights.shape(n)) == 2 and not model.weights.is_merged(n):
                copy_rows(fh, model.weights, n, tdtype)
            else:
                write_array(fh, to_numpy(model.weights.get(n, tdtype)))
            bar.update(1)
    from transformers import MODEL_MAPPING

    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["architectures"] = [MODEL_MAPPING[type(model.config)].__name__]
    cfg["torch_dtype"] = str(tdtype).removeprefix("torch.")
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return Variant("torch", dtype, [FileRecord(f"{TORCH_DIR}/model.safetensors"), FileRecord(f"{TORCH_DIR}/config.json")],
                   facts={"export": "streamed"})
