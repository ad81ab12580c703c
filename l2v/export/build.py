"""Stage 1 of the export: MODEL (+ adapters) -> the `EmbeddingModel` in memory, its tokenizer and text spec.

Nothing here writes a file. The result is handed to the writer stage and, with `--quant`, to
quantization (which then needs no second copy of the model from disk).
"""
from __future__ import annotations

from dataclasses import dataclass

from l2v.errors import InputError


@dataclass
class BuiltEncoder:
    encoder: object  # l2v.model.encoder.EmbeddingModel (fp32, eval)
    tokenizer: object
    text_spec: object  # l2v.text.TextSpec
    source: object  # l2v.model.source.ModelSource
    adapters: list  # [AdapterInfo]
    applied: list[str]  # "merged" | "unmerged", per adapter
    pad_token_source: str

    @property
    def backbone(self):
        return self.encoder.backbone

    @property
    def config(self):
        return self.encoder.backbone.config

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def preprocessor(self):
        from l2v.text import Preprocessor

        return Preprocessor(self.tokenizer, self.text_spec)


DEFAULT_MAX_LENGTH = 512


def resolve_max_length(config, max_length: int | None) -> int:
    """--max-length cannot exceed what the model has positions for; None: 512, or the context if shorter."""
    limit = getattr(config, "max_position_embeddings", None)
    limit = limit if isinstance(limit, int) and limit > 0 else None
    if max_length is None:
        return min(DEFAULT_MAX_LENGTH, limit or DEFAULT_MAX_LENGTH)
    if limit is not None and max_length > limit:
        raise InputError(f"--max-length {max_length} exceeds the model's context of {limit} positions",
                         hint=f"use --max-length {limit} or less")
    return max_length


def build_encoder(source, opts, step) -> BuiltEncoder:
    """Load (fp32), merge adapters, wrap as the graph computes it. `step(msg)` reports progress."""
    from l2v.model.adapters import merge_adapters, merge_all_but_last
    from l2v.model.encoder import EmbeddingModel
    from l2v.model.load import load, load_config
    from l2v.text.presets import adapter_base_names, build_text_spec

    opts.max_length = resolve_max_length(load_config(source), opts.max_length)
    step("loading the model")
    loaded = load(source, "fp32", opts.adapters, opts.tokenizer)
    if opts.adapters:
        how = "all but the last, which stays unmerged" if opts.unmerged_last else "in order"
        step(f"merging {len(opts.adapters)} adapter(s), {how}")
    merge = merge_all_but_last if opts.unmerged_last else merge_adapters
    backbone, infos = merge(loaded.model, opts.adapters)
    applied = ["merged"] * len(infos)
    if opts.unmerged_last:
        applied[-1] = "unmerged"
    encoder = EmbeddingModel(backbone, opts.pooling, opts.normalize, opts.causal, opts.dim).eval()
    text_spec = build_text_spec(opts.preset, opts.pooling, opts.max_length, opts.template, opts.chat_template,
                                opts.text_mode, opts.doc_max_length, backbone.config.model_type,
                                [source.name, *adapter_base_names(opts.adapters)])
    loaded.tokenizer.padding_side = text_spec.padding_side
    return BuiltEncoder(encoder, loaded.tokenizer, text_spec, source, infos, applied, loaded.pad_token_source)
