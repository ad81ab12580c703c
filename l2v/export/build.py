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
    st: object = None  # l2v.model.st.STModel for a sentence-transformers source

    @property
    def backbone(self):
        return self.encoder.backbone

    @property
    def config(self):
        return self.encoder.backbone.config

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def head_specs(self) -> list[dict]:
        return self.encoder.head_specs()

    def preprocessor(self):
        from l2v.text import Preprocessor

        return Preprocessor(self.tokenizer, self.text_spec, self.vocab_rows)

    @property
    def vocab_rows(self) -> int:
        return int(self.backbone.get_input_embeddings().weight.shape[0])


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


def st_max_length(config, st, tokenizer_dir: str) -> int:
    """sentence-transformers' truncation length: `max_seq_length` of the Transformer module when set,
    else the tokenizer's `model_max_length` capped at the model's positions (base/modules/transformer.py);
    capped here at the positions in both cases (longer is refused by `resolve_max_length`)."""
    limit = getattr(config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH
    if st.max_seq_length is not None:
        return min(st.max_seq_length, limit)
    import json
    from pathlib import Path

    cfg = Path(tokenizer_dir) / "tokenizer_config.json"
    tok_max = json.loads(cfg.read_text(encoding="utf-8")).get("model_max_length") if cfg.is_file() else None
    return min(int(tok_max), limit) if isinstance(tok_max, (int, float)) and tok_max > 0 else limit


def st_causal(config, forced: bool | None) -> bool:
    """--causal/--no-causal when given, else what the config says (`use_bidirectional_attention`,
    `is_causal`), else causal, as transformers runs a decoder inside sentence-transformers."""
    from l2v.model.masks import config_is_causal

    if forced is not None:
        return bool(forced)
    said = config_is_causal(config)
    return True if said is None else said


def resolve_lengths(source, config, opts) -> None:
    """`opts.max_length` (a sentence-transformers folder's max_seq_length when not given, capped by the
    model's context) and, for such a folder, `opts.causal` from its config. Idempotent: the pipeline calls
    it before planning, `build_encoder` again for direct callers."""
    if opts.st is not None:
        if opts.max_length is None:
            opts.max_length = st_max_length(config, opts.st, opts.tokenizer or source.path)
        opts.causal = st_causal(config, opts.causal)
    opts.max_length = resolve_max_length(config, opts.max_length)


def build_encoder(source, opts, step) -> BuiltEncoder:
    """Load (fp32), merge adapters, wrap as the graph computes it. `step(msg)` reports progress."""
    from l2v.model.adapters import merge_adapters, merge_all_but_last
    from l2v.model.encoder import EmbeddingModel
    from l2v.model.load import load, load_config
    from l2v.text.presets import adapter_base_names, build_st_text_spec, build_text_spec

    resolve_lengths(source, load_config(source), opts)
    step(f"loading the model ({source.name})")
    loaded = load(source, "fp32", opts.adapters, opts.tokenizer)
    if opts.adapters:
        how = "all but the last, which stays unmerged" if opts.unmerged_last else "in order"
        step(f"merging {len(opts.adapters)} adapter{'s' if len(opts.adapters) > 1 else ''}, {how}")
    merge = merge_all_but_last if opts.unmerged_last else merge_adapters
    backbone, infos = merge(loaded.model, opts.adapters)
    applied = ["merged"] * len(infos)
    if opts.unmerged_last:
        applied[-1] = "unmerged"
    head = None
    if opts.st is not None:
        from l2v.model.st import load_dense_head

        head = load_dense_head(opts.st)
        text_spec = build_st_text_spec(opts.st, opts.max_length, loaded.tokenizer.padding_side)
    else:
        text_spec = build_text_spec(opts.preset, opts.pooling, opts.max_length, opts.template, opts.chat_template,
                                    opts.text_mode, opts.doc_max_length, backbone.config.model_type,
                                    [source.name, *adapter_base_names(opts.adapters)])
    encoder = EmbeddingModel(backbone, opts.pooling, opts.normalize, opts.causal, opts.dim, head).eval()
    loaded.tokenizer.padding_side = text_spec.padding_side
    return BuiltEncoder(encoder, loaded.tokenizer, text_spec, source, infos, applied, loaded.pad_token_source,
                        opts.st)
