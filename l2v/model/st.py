"""Read a sentence-transformers model folder (`modules.json`) into an `STModel`: what the exported graph and
the text recipe must reproduce. Nothing here loads weights except the small Dense heads.

Supported module stack, in this order (the class name is what counts, so both the old
`sentence_transformers.models.X` and the 6.x `sentence_transformers.base.modules....X` paths work):

    Transformer -> Pooling -> Dense* -> Normalize?        (Dropout anywhere after Transformer: a no-op)

Everything else (LayerNorm, WeightedLayerPooling, Router/Asym, StaticEmbedding, CNN, LSTM, custom modules)
and every setting that would change the vectors in a way we do not reproduce (lower-casing, chat-template
"message" input, query expansion, several pooling modes at once, non-torch activations) is an
`UnsupportedModuleError` naming the module type or the key. sentence-transformers' own source
(`base/modules/transformer.py`, `sentence_transformer/modules/pooling.py`, `base/modules/dense.py`,
`base/modules/normalize.py`, `sentence_transformer/model.py`) defines the semantics; docs/st.md lists
every key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from l2v.errors import L2VError, UnsupportedModuleError

MODULES_JSON = "modules.json"
ST_CONFIG = "config_sentence_transformers.json"
TRANSFORMER_CONFIGS = ("sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json",
                       "sentence_camembert_config.json", "sentence_albert_config.json",
                       "sentence_xlm-roberta_config.json", "sentence_xlnet_config.json")
# sentence-transformers Pooling mode -> the graph's pooling (l2v.model.pooling)
POOLING = {"mean": "mean", "cls": "first_token", "lasttoken": "last_token", "weightedmean": "position_weighted_mean",
           "max": "max", "mean_sqrt_len_tokens": "mean_sqrt_len"}
LEGACY_POOLING = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                  "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
EXPORTED = ("Transformer", "Pooling", "Dense", "Normalize", "Dropout")
SIMILARITIES = ("cosine", "dot", "euclidean", "manhattan")
DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"  # Dense's default when the config names none
EMBEDDING = "sentence_embedding"


@dataclass(frozen=True)
class DenseModule:
    path: str  # the module's folder inside the ST folder ("2_Dense")
    spec: dict  # l2v.model.head layer spec


@dataclass(frozen=True)
class STModel:
    root: str
    transformer_path: str  # the HF model folder inside root ("" = root)
    pooling: str  # l2v pooling mode
    pooling_st: str  # as sentence-transformers names it
    include_prompt: bool
    dense: tuple = ()
    normalize: bool = False
    max_seq_length: int | None = None
    prompts: dict = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None
    truncate_dim: int | None = None
    modules: tuple = ()  # ({"type": full type, "path": path}, ...) as modules.json lists them
    version: str | None = None  # sentence-transformers version that saved it

    @property
    def transformer_dir(self) -> Path:
        return Path(self.root) / self.transformer_path

    def module_dir(self, path: str) -> Path:
        return Path(self.root) / path


def is_st_folder(path) -> bool:
    return (Path(path) / MODULES_JSON).is_file()


def _bad(msg: str, hint: str | None = None) -> UnsupportedModuleError:
    return UnsupportedModuleError(msg, hint=hint or "export the plain Hugging Face model directory instead, "
                                  "or remove that module from modules.json if it is not needed at inference")


def _read_json(path: Path, what: str, default=None):
    if not path.is_file():
        if default is not None:
            return default
        raise _bad(f"{what}: {str(path)!r} is missing", hint="the sentence-transformers folder is incomplete")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(f"{what}: {str(path)!r} is not valid JSON ({e})", hint="the file is damaged; re-download it") from e


def _relpath(root: Path, path, what: str) -> str:
    p = str(path or "")
    parts = [x for x in p.replace("\\", "/").split("/") if x]
    if p.startswith(("/", "~")) or ".." in parts:
        raise _bad(f"{MODULES_JSON}: {what} path {p!r} points outside the folder", hint="fix modules.json")
    if not (root / p).is_dir():
        raise _bad(f"{MODULES_JSON}: {what} path {p!r} is not a folder of {str(root)!r}",
                   hint="the sentence-transformers folder is incomplete")
    return "/".join(parts)


def _kind(type_name: str) -> str:
    return str(type_name).rsplit(".", 1)[-1]


def _refuse_module(i: int, entry: dict) -> UnsupportedModuleError:
    return _bad(f"{MODULES_JSON} module {i} is {entry.get('type')!r} (path {entry.get('path')!r}), which l2v cannot "
                f"export", hint=f"l2v exports {', '.join(EXPORTED[:-1])} (and Dropout, a no-op at inference); "
                "run this model in sentence-transformers, or remove the module if inference does not need it")


def read_modules(root: Path) -> list[dict]:
    entries = _read_json(root / MODULES_JSON, MODULES_JSON)
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and "type" in e for e in entries):
        raise _bad(f"{MODULES_JSON} in {str(root)!r} must be a non-empty list of modules with a 'type'",
                   hint="the file is damaged; re-download it")
    for i, e in enumerate(entries):
        kind = _kind(e["type"])
        if not str(e["type"]).startswith("sentence_transformers.") or kind not in EXPORTED:
            raise _refuse_module(i, e)
    return entries


def read_st_folder(path) -> STModel:
    """Parse and check the whole folder; raises `UnsupportedModuleError` naming what cannot be exported."""
    root = Path(path).expanduser().resolve()
    entries = read_modules(root)
    kinds = [_kind(e["type"]) for e in entries]
    core = [(i, k) for i, k in enumerate(kinds) if k != "Dropout"]
    order = [k for _, k in core]
    if order[:2] != ["Transformer", "Pooling"] or any(k not in ("Dense", "Normalize") for k in order[2:]) \
            or "Normalize" in order[2:-1] or order.count("Normalize") > 1:
        raise _bad(f"{MODULES_JSON} stacks {' -> '.join(kinds)}; l2v exports Transformer -> Pooling -> Dense* -> "
                   "Normalize", hint="run this model in sentence-transformers")
    tpath = _relpath(root, entries[core[0][0]].get("path"), "Transformer")
    max_len = read_transformer_config(root / tpath)
    pooling_st, include_prompt = read_pooling(root / _relpath(root, entries[core[1][0]].get("path"), "Pooling"))
    dense = tuple(DenseModule(p, read_dense(root / p)) for i, k in core[2:] if k == "Dense"
                  for p in [_relpath(root, entries[i].get("path"), "Dense")])
    for i, k in core[2:]:
        if k == "Normalize":
            read_normalize(root / str(entries[i].get("path") or ""))
    cfg = read_st_config(root)
    return STModel(
        root=str(root), transformer_path=tpath, pooling=POOLING[pooling_st], pooling_st=pooling_st,
        include_prompt=include_prompt, dense=dense, normalize=order[-1] == "Normalize", max_seq_length=max_len,
        prompts=cfg["prompts"], default_prompt_name=cfg["default_prompt_name"],
        similarity_fn_name=cfg["similarity_fn_name"], truncate_dim=cfg["truncate_dim"],
        modules=tuple({"type": e["type"], "path": str(e.get("path") or "")} for e in entries),
        version=cfg["version"])


# ---------------------------------------------------------------------- per module
def read_transformer_config(folder: Path) -> int | None:
    """sentence_bert_config.json (or a legacy name): returns max_seq_length. Refuses what changes the input
    in ways we do not reproduce."""
    cfg = {}
    for name in TRANSFORMER_CONFIGS:
        if (folder / name).is_file():
            cfg = _read_json(folder / name, "Transformer config")
            break
    if cfg.get("do_lower_case"):
        raise _bad("Transformer: do_lower_case is true (the text is lower-cased before tokenising), which l2v "
                   "does not reproduce", hint="lower-case the texts yourself, or use sentence-transformers")
    task = cfg.get("transformer_task", "feature-extraction")
    if task != "feature-extraction":
        raise _bad(f"Transformer: transformer_task {task!r} is not an embedding model",
                   hint="l2v exports feature-extraction models (SentenceTransformer)")
    modality = cfg.get("modality_config") or {"text": {}}
    if set(modality) != {"text"}:
        raise _bad(f"Transformer: modality_config has {sorted(modality)}; l2v embeds plain text only "
                   "('message' renders every text through the chat template)",
                   hint="keep only the 'text' entry in sentence_bert_config.json modality_config to embed text as "
                        "sentence-transformers < 6 did")
    text = modality["text"]
    if text and (text.get("method", "forward") != "forward" or text.get("method_output_name") != "last_hidden_state"):
        raise _bad(f"Transformer: modality_config text {text!r} does not read last_hidden_state from forward")
    for key in ("processing_kwargs", "query_expansion", "query_length", "document_length"):
        if cfg.get(key):
            raise _bad(f"Transformer: {key} {cfg[key]!r} is not supported",
                       hint="remove it from sentence_bert_config.json to embed as sentence-transformers does by default")
    for key in ("config_kwargs", "config_args"):
        if cfg.get(key):
            raise _bad(f"Transformer: {key} {cfg[key]!r} would change the model config at load; l2v reads "
                       "config.json as it is", hint="write those settings into config.json")
    out_name = cfg.get("module_output_name", "token_embeddings")
    if out_name != "token_embeddings":
        raise _bad(f"Transformer: module_output_name {out_name!r} (l2v pools token_embeddings)")
    tok = cfg.get("processor_kwargs") or cfg.get("tokenizer_args") or {}
    max_len = cfg.get("max_seq_length", tok.get("model_max_length"))
    if max_len is not None and (not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1):
        raise _bad(f"Transformer: max_seq_length {max_len!r} must be a positive integer", hint="fix sentence_bert_config.json")
    return max_len


def read_pooling(folder: Path) -> tuple[str, bool]:
    cfg = dict(_read_json(folder / "config.json", "Pooling config"))
    mode = cfg.get("pooling_mode")
    if mode is None:
        active = [m for key, m in LEGACY_POOLING.items() if cfg.get(key)]
        mode = active if active else "mean"  # sentence-transformers' rule for an all-false legacy config
    if isinstance(mode, (list, tuple)):
        if len(mode) != 1:
            raise _bad(f"Pooling: {len(mode)} modes {list(mode)} concatenated; l2v pools with one mode",
                       hint="run this model in sentence-transformers")
        mode = mode[0]
    if mode not in POOLING:
        raise _bad(f"Pooling: mode {mode!r} is not supported", hint=f"supported: {', '.join(POOLING)}")
    include = cfg.get("include_prompt", True)
    if not isinstance(include, bool):
        raise _bad(f"Pooling: include_prompt {include!r} must be true or false")
    return mode, include


def activation_name(path: str) -> str:
    """'torch.nn.modules.linear.Identity' -> 'Identity' (refused unless a supported torch.nn activation)."""
    from l2v.model.head import ACTIVATIONS

    name = _kind(path)
    if not str(path).startswith("torch.") or name not in ACTIVATIONS:
        raise _bad(f"Dense: activation_function {path!r} is not one l2v exports",
                   hint=f"supported: torch.nn {', '.join(ACTIVATIONS)}")
    return name


def read_dense(folder: Path) -> dict:
    cfg = _read_json(folder / "config.json", "Dense config")
    for key in ("module_input_name", "module_output_name"):
        if cfg.get(key, EMBEDDING) != EMBEDDING:
            raise _bad(f"Dense ({folder.name}): {key} {cfg[key]!r}; l2v applies Dense to the pooled sentence_embedding")
    try:
        spec = {"in_features": cfg["in_features"], "out_features": cfg["out_features"], "bias": cfg.get("bias", True),
                "activation": activation_name(cfg.get("activation_function", DEFAULT_ACTIVATION)),
                "residual": cfg.get("use_residual", False)}
    except KeyError as e:
        raise _bad(f"Dense ({folder.name}): config.json lacks {e}", hint="the folder is damaged; re-download it") from e
    from l2v.model.head import check_dense_spec

    try:
        return check_dense_spec(spec, f"Dense ({folder.name})")
    except L2VError as e:
        raise _bad(str(e).split(" (")[0]) from e


def read_normalize(folder: Path) -> None:
    cfg = _read_json(folder / "config.json", "Normalize config", default={}) if folder.is_dir() else {}
    for key in ("module_input_name", "module_output_name"):
        if cfg.get(key, EMBEDDING) != EMBEDDING:
            raise _bad(f"Normalize: {key} {cfg[key]!r}; l2v normalises the sentence_embedding")


def read_st_config(root: Path) -> dict:
    cfg = _read_json(root / ST_CONFIG, ST_CONFIG, default={})
    model_type = cfg.get("model_type", "SentenceTransformer")
    if model_type != "SentenceTransformer":
        raise _bad(f"{ST_CONFIG}: model_type {model_type!r} is not a dense SentenceTransformer",
                   hint="l2v exports dense embedding models")
    prompts = cfg.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise _bad(f"{ST_CONFIG}: prompts must map names to strings", hint="fix the file")
    default = cfg.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise _bad(f"{ST_CONFIG}: default_prompt_name {default!r} is not one of the prompts {sorted(prompts)}",
                   hint="fix the file")
    sim = cfg.get("similarity_fn_name")
    if sim is not None and sim not in SIMILARITIES:
        raise _bad(f"{ST_CONFIG}: similarity_fn_name {sim!r} is not a single-vector similarity",
                   hint=f"one of {', '.join(SIMILARITIES)}")
    dim = cfg.get("truncate_dim")
    if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
        raise _bad(f"{ST_CONFIG}: truncate_dim {dim!r} must be a positive integer")
    version = (cfg.get("__version__") or {}).get("sentence_transformers")
    return {"prompts": dict(prompts), "default_prompt_name": default, "similarity_fn_name": sim,
            "truncate_dim": dim, "version": version}


# ---------------------------------------------------------------------- weights
def load_dense_head(st: STModel):
    """The Dense layers as one `DenseHead` (fp32), weights from each module's model.safetensors or
    pytorch_model.bin (keys linear.weight, linear.bias, residual.weight). None without Dense modules."""
    if not st.dense:
        return None
    import torch

    from l2v.model.head import DenseHead

    head = DenseHead([d.spec for d in st.dense])
    for layer, d in zip(head.dense, st.dense):
        state = _dense_state(st.module_dir(d.path))
        _load_strict(layer, state, d.path)
    return head.to(torch.float32).eval()


def _load_strict(layer, state: dict, path: str) -> None:
    keys = set(layer.state_dict())
    missing, extra = sorted(keys - set(state)), sorted(set(state) - keys)
    if missing or extra:
        raise _bad(f"Dense ({path}): weights lack {missing} / hold unexpected {extra}",
                   hint="the folder is damaged; re-download it")
    try:
        layer.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as e:  # a shape mismatch
        raise _bad(f"Dense ({path}): weights do not match its config: {str(e).splitlines()[-1].strip()[:200]}",
                   hint="the folder is damaged; re-download it") from e


def _dense_state(folder: Path) -> dict:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        import torch

        return torch.load(str(folder / "pytorch_model.bin"), map_location="cpu", weights_only=True)
    raise _bad(f"Dense ({folder.name}): no model.safetensors or pytorch_model.bin",
               hint="the folder is incomplete; re-download it")


def weight_files(st: STModel) -> list[Path]:
    """The Dense weight files (for the source record's checksums)."""
    out = []
    for d in st.dense:
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (st.module_dir(d.path) / name).is_file():
                out.append(st.module_dir(d.path) / name)
                break
    return out
