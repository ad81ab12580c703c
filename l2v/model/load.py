"""Load a backbone (the decoder without LM head) and its tokenizer, offline, with typed errors."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from l2v.errors import ModelLoadError
from l2v.model.arch import arch_of
from l2v.model.source import ModelSource

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class Loaded:
    model: object  # transformers PreTrainedModel (base model, no LM head)
    tokenizer: object
    source: ModelSource
    pad_token_source: str


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def load_config(source: ModelSource):
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source.path, **source.from_pretrained_kwargs())
    except Exception as e:  # transformers raises many types for unreadable/corrupt configs
        raise ModelLoadError(f"cannot read the config of MODEL {source.name!r}: {_one_line(e)}") from e
    check_architecture(config)
    return config


def check_architecture(config) -> None:
    arch_of(getattr(config, "model_type", None))


def load_backbone(source: ModelSource, dtype: str = "fp32", attn_implementation: str | None = None):
    """attn_implementation None lets transformers pick sdpa where the architecture has it, else eager."""
    import torch
    from transformers import AutoModel

    config = load_config(source)
    try:
        model = AutoModel.from_pretrained(
            source.path, dtype=getattr(torch, DTYPES[dtype]), attn_implementation=attn_implementation,
            **source.from_pretrained_kwargs(),
        )
    except Exception as e:  # corrupt / truncated safetensors or GGUF surface as many exception types
        raise ModelLoadError(f"cannot load the weights of MODEL {source.name!r}: {_one_line(e)}",
                             hint="the file may be truncated or corrupt; re-download it") from e
    if getattr(model.config, "model_type", None) != config.model_type:
        check_architecture(model.config)
    return model.eval()


def _has_tokenizer(path: Path) -> bool:
    return any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json"))


def load_tokenizer(source: ModelSource, fallbacks: list[str] = ()):
    """The model's tokenizer; for a directory without one, the first adapter directory that has one."""
    from transformers import AutoTokenizer

    candidates = [(source.path, source.from_pretrained_kwargs())]
    candidates += [(d, {"local_files_only": True}) for d in fallbacks if _has_tokenizer(Path(d))]
    if source.kind != "gguf" and not _has_tokenizer(Path(source.path)):
        candidates = candidates[1:]
    if not candidates:
        raise ModelLoadError(f"no tokenizer found for MODEL {source.name!r}",
                             hint="save tokenizer files next to config.json, or pass --tokenizer DIR")
    path, kw = candidates[0]
    try:
        return AutoTokenizer.from_pretrained(path, **kw)
    except Exception as e:
        raise ModelLoadError(f"cannot load the tokenizer from {path!r}: {_one_line(e)}") from e


def choose_pad_token(tokenizer) -> str:
    """Pick a pad token deliberately and return where it came from.

    Padded keys are masked and positions come from the attention mask, so the pad id never changes an
    embedding; we still fix it so the artifact is reproducible: the tokenizer's own pad token, else eos
    (the LLM2Vec convention), else unk.
    """
    if tokenizer.pad_token is not None:
        return "tokenizer"
    for attr in ("eos_token", "unk_token"):
        if getattr(tokenizer, attr) is not None:
            tokenizer.pad_token = getattr(tokenizer, attr)
            return attr.replace("_token", "")
    raise ModelLoadError("the tokenizer has no pad, eos or unk token to pad with",
                         hint="add a pad token to the tokenizer")


def load(source: ModelSource, dtype: str = "fp32", adapter_dirs: list[str] = (),
         tokenizer_dir: str | None = None, attn_implementation: str | None = None) -> Loaded:
    if tokenizer_dir:
        tok_source = ModelSource("hf_dir", tokenizer_dir, name=tokenizer_dir)
        tokenizer = load_tokenizer(tok_source)
    else:
        tokenizer = load_tokenizer(source, list(adapter_dirs))
    pad_source = choose_pad_token(tokenizer)
    model = load_backbone(source, dtype, attn_implementation)
    check_vocab(tokenizer, model.get_input_embeddings().weight.shape[0])
    return Loaded(model, tokenizer, source, pad_source)


def check_vocab(tokenizer, rows: int) -> None:
    """Every id the tokenizer can produce from text must have an embedding row, except added *special*
    tokens that no tokenizer call inserts by itself (Gemma 3's `<image_soft_token>`, one past its 262,144
    rows): text cannot produce those unless it spells them, and `Preprocessor` refuses such a text with a
    clear error (the manifest records `tokenizer.embedding_rows`). Refused: plain vocabulary or non-special
    added tokens beyond the rows, and pad/bos/eos/unk beyond them (they are inserted without being written)."""
    if len(tokenizer) <= rows:
        return
    beyond = sorted(i for i in tokenizer.get_vocab().values() if i >= rows)
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    plain = [i for i in beyond if i not in added or not getattr(added[i], "special", False)]
    inserted = sorted({getattr(tokenizer, f"{t}_token_id", None) for t in ("pad", "bos", "eos", "unk")} - {None})
    inserted = [i for i in inserted if i >= rows]
    if plain or inserted:
        which = inserted or plain
        raise ModelLoadError(
            f"the tokenizer has {len(tokenizer)} tokens but the model embeds only {rows}; token id(s) "
            f"{which[:5]} beyond the rows are {'inserted by the tokenizer' if inserted else 'ordinary tokens'}",
            hint="the tokenizer belongs to another model; pass the right one with --tokenizer")


@contextlib.contextmanager
def quiet_loading(silence_stderr: bool = False):
    """transformers' progress bars off for the context (and with `silence_stderr`, the GGUF de-quantiser's
    plain tqdm too); the previous state is restored on exit, also on error. Errors still propagate."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        if silence_stderr:
            with contextlib.redirect_stderr(io.StringIO()):
                yield
        else:
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
