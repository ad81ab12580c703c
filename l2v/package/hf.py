"""`l2v-package ARTIFACT --format hf --out DIR`: a Hugging Face model directory + sentence-transformers modules.

    DIR/config.json, model.safetensors      the merged backbone (the artifact's `torch` variant), with the
                                            config keys that make it bidirectional in transformers, TEI,
                                            vLLM and llama.cpp (`FLAGS`, sources in docs/serving.md)
    DIR/tokenizer files                     the artifact's, pad token and max length set
    DIR/modules.json                        0 l2v_st.L2VTransformer, 1 Pooling, [2 L2VTruncate], [3 Normalize]
    DIR/1_Pooling/config.json               ST's Pooling (mean, cls, lasttoken; TEI and vLLM read it), or
                                            l2v_st.L2VPooling where ST's differs from l2v's (weighted mean)
    DIR/l2v_st.py + l2v_*.py                the custom modules and l2v's vendored preprocessing, masks, pooling
    DIR/l2v_sentence_transformers.json      text spec, pad token, attention, pooling, l2v's sliding window
    DIR/config_sentence_transformers.json   prompts (name -> instruction), cosine similarity

Why a custom input module: ST's `Transformer` pools every token (or drops a prompt by token count),
while l2v pools only the text's tokens (BOS, instruction and template head attended to, not pooled,
found from character offsets) and renders text through its text spec. `L2VTransformer` runs l2v's own
preprocessing and explicit bidirectional mask, then hands ST's standard modules the pooled-token mask.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from l2v.errors import ArtifactError, InputError, UnsupportedArchitectureError

# config.json keys per model_type; "sliding_window" entries are functions of the model's own window W
# (l2v's mask: |i-j| < W). Why each key, and which engine reads it: docs/serving.md.
FLAGS = {
    "llama": {"is_causal": False, "use_bidirectional_attention": True},
    "mistral": {"is_causal": False, "use_bidirectional_attention": True},
    "qwen2": {"is_causal": False},
    "qwen3": {"is_causal": False, "use_bidirectional_attention": True},
    "gemma": {"is_causal": False},
    "gemma2": {"is_causal": False, "sliding_window": lambda w: w - 1},
    # NOT is_causal: with both keys transformers takes the is_causal path with the halved window (inclusive)
    "gemma3_text": {"use_bidirectional_attention": True, "sliding_window": lambda w: 2 * w - 2},
}
# l2v pooling -> (ST Pooling mode, the mask it pools over); None: ST's mode differs, ship L2VPooling
ST_POOLING = {"mean": ("mean", "pooling_mask"), "bos_token": ("cls", "attention_mask"),
              "last_token": ("lasttoken", "pooling_mask"), "eos_token": ("lasttoken", "pooling_mask"),
              "weighted_mean": None}  # ST's weights are absolute positions (5.x) or start at the first mask 1
LEGACY_KEYS = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens",
               "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
               "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}
CONFIG_NAME = "l2v_sentence_transformers.json"


def _pattern(layer_types) -> int | None:
    """The p with layer i sliding iff (i+1) % p != 0 (Gemma 3's old `sliding_window_pattern`), if any."""
    for p in range(1, len(layer_types) + 2):
        if all((lt == "sliding_attention") == bool((i + 1) % p) for i, lt in enumerate(layer_types)):
            return p
    return None


def engine_compat(cfg: dict) -> dict:
    """Keys TEI's Gemma3Config requires that transformers 5 no longer writes (TEI backends/candle/src/
    models/gemma3.rs: `rope_local_base_freq: f32`, `_sliding_window_pattern: usize`, both non-optional)."""
    if cfg.get("model_type") == "gemma3_text":
        rp = cfg.get("rope_parameters") or {}
        if cfg.get("rope_local_base_freq") is None and "sliding_attention" in rp:
            cfg["rope_local_base_freq"] = rp["sliding_attention"].get("rope_theta", 10000.0)
        if cfg.get("rope_theta") is None and "full_attention" in rp:
            cfg["rope_theta"] = rp["full_attention"].get("rope_theta")
        if cfg.get("layer_types") and (p := _pattern(cfg["layer_types"])) is not None:
            cfg["_sliding_window_pattern"] = p
    return cfg


def bidirectional_config(config: dict, causal: bool) -> dict:
    """config.json for the package: the engines' compatibility keys and, unless causal, the flags."""
    cfg = engine_compat(dict(config))
    if causal:
        return cfg
    model_type = cfg.get("model_type")
    if model_type not in FLAGS:
        raise UnsupportedArchitectureError(f"no bidirectional config flags known for model_type {model_type!r}",
                                           hint=f"supported: {', '.join(FLAGS)}")
    for k, v in FLAGS[model_type].items():
        if k != "sliding_window":
            cfg[k] = v
        elif cfg.get("sliding_window"):
            cfg[k] = v(int(cfg["sliding_window"]))
    return cfg


def package_prompts(manifest, prompts: dict | None) -> dict:
    """The `prompts` of config_sentence_transformers.json (name -> l2v instruction): those given. The one
    place where an artifact's own prompt table (its preset's, when the manifest records one) joins them."""
    out = {}
    for name, text in (prompts or {}).items():
        if not isinstance(name, str) or not name or not isinstance(text, str):
            raise InputError(f"prompt {name!r}={text!r} must be NAME=INSTRUCTION with a non-empty NAME")
        out[name] = text
    return out


def torch_variant(art) -> str:
    m = art.manifest
    names = m.variants_of("torch")
    if not names:
        raise ArtifactError("the artifact has no PyTorch weights (its torch variant), which the HF package is made from",
                            hint="re-export without --no-torch-weights")
    if not m.adapters_merged:
        raise ArtifactError("the artifact keeps its last adapter unmerged; an HF package needs merged weights",
                            hint="re-export without --keep-last-adapter-unmerged")
    return names[0]


def _copy(src: Path, dst: Path) -> None:
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def _pooling_modules(out: Path, m, hidden: int, modules: list) -> str:
    mode = ST_POOLING[m.graph.pooling]
    d = out / "1_Pooling"
    d.mkdir()
    if mode is None:  # L2VPooling; TEI still reads the legacy key (and refuses weightedmean: it has none)
        cfg = {"word_embedding_dimension": hidden, "l2v_pooling": m.graph.pooling,
               **{k: name == "weightedmean" for name, k in LEGACY_KEYS.items()}, "include_prompt": True}
        modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": "l2v_st.L2VPooling"})
        pool_over = "pooling_mask"
    else:
        st_mode, pool_over = mode
        cfg = {"word_embedding_dimension": hidden, **{k: name == st_mode for name, k in LEGACY_KEYS.items()},
               "include_prompt": True}  # True: the pooling mask already leaves the instruction out
        modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})
    (d / "config.json").write_text(json.dumps(cfg, indent=2))
    return pool_over


def write_hf_package(artifact, out, prompts: dict | None = None, default_prompt_name: str | None = None,
                     overwrite: bool = False) -> Path:
    """Write the package; returns its path. Raises `L2VError` on bad input (nothing written then)."""
    from l2v.artifact import open_artifact
    from l2v.package.output import package_dir
    from l2v.package.vendor import write_flat_modules

    art = open_artifact(artifact)
    m = art.manifest
    variant = torch_variant(art)
    if art.preprocessor().views != 1:
        raise InputError("this artifact renders several prompts per text (MetaEOL), which sentence-transformers "
                         "modules cannot average", hint="serve it with l2v-serve")
    prompts = package_prompts(m, prompts)
    if default_prompt_name is not None and default_prompt_name not in prompts:
        raise InputError(f"--default-prompt {default_prompt_name!r} is not one of the prompts",
                         hint=f"given: {', '.join(prompts) or 'none'}")
    v = art.variant(variant)
    art.check(v)
    config_rec = next((r for r in v.files if Path(r.path).name == "config.json"), None)
    if config_rec is None:
        raise ArtifactError(f"the {variant} variant has no config.json", hint="re-export the artifact")
    config = json.loads(art.path(config_rec.path).read_text())
    causal = m.graph.attention == "causal"
    hf_config = bidirectional_config(config, causal)
    hidden, dim = int(config["hidden_size"]), int(m.graph.dim)
    source = {"artifact": str(art.root), "variant": variant}
    with package_dir(out, overwrite, "hf", source) as tmp:
        for rec in v.files:  # weights (and index) at the root, as from_pretrained expects
            if rec is not config_rec:
                _copy(art.path(rec.path), tmp / Path(rec.path).name)
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2))
        art.tokenizer.save_pretrained(str(tmp))  # with the recorded pad token (also for schema-1 artifacts)
        tok_cfg_path = tmp / "tokenizer_config.json"
        tok_cfg = json.loads(tok_cfg_path.read_text()) if tok_cfg_path.exists() else {}
        tok_cfg.update(pad_token=m.tokenizer.pad_token, model_max_length=m.max_length)
        tok_cfg_path.write_text(json.dumps(tok_cfg, indent=2))

        modules = [{"idx": 0, "name": "0", "path": "", "type": "l2v_st.L2VTransformer"}]
        pool_over = _pooling_modules(tmp, m, hidden, modules)
        if dim < hidden:
            _add_module(tmp, modules, "L2VTruncate", "l2v_st.L2VTruncate", {"dim": dim})
        if m.graph.normalize:
            _add_module(tmp, modules, "Normalize", "sentence_transformers.models.Normalize", None)
        (tmp / "modules.json").write_text(json.dumps(modules, indent=2))
        l2v_cfg = {"text": {**m.text, "pooling": m.graph.pooling}, "pad_token": m.tokenizer.pad_token,
                   "causal": causal, "pooling": m.graph.pooling, "pool_over": pool_over, "mask": "explicit",
                   "sliding_window": config.get("sliding_window"), "dim": dim, "normalize": bool(m.graph.normalize)}
        (tmp / CONFIG_NAME).write_text(json.dumps(l2v_cfg, indent=1))
        write_flat_modules(tmp)
        (tmp / "l2v_st.py").write_text(
            resources.files("l2v.package").joinpath("templates/l2v_st.py").read_text(encoding="utf-8"))
        (tmp / "config_sentence_transformers.json").write_text(json.dumps(
            {"model_type": "SentenceTransformer", "prompts": prompts, "default_prompt_name": default_prompt_name,
             "similarity_fn_name": "cosine"}, indent=2))
        (tmp / "README.md").write_text(_readme(Path(out).name, m, hf_config, modules[1]["type"]))
    return Path(out).expanduser().resolve()


def _add_module(out: Path, modules: list, name: str, type_: str, config: dict | None) -> None:
    i = len(modules)
    d = out / f"{i}_{name}"
    d.mkdir()
    if config is not None:
        (d / "config.json").write_text(json.dumps(config))
    modules.append({"idx": i, "name": str(i), "path": d.name, "type": type_})


def _readme(name, m, cfg, pooling_type) -> str:
    flags = {k: cfg[k] for k in ("is_causal", "use_bidirectional_attention", "sliding_window") if k in cfg}
    return f"""---
library_name: sentence-transformers
tags: [sentence-transformers, feature-extraction, l2v, llm2vec]
---
# {name} (l2v package)

{m.model.architecture} backbone, {m.graph.attention} attention, {m.graph.pooling} pooling over the text's tokens
only (BOS, instruction and template head excluded), exported and validated by l2v-export, packaged by l2v-package.

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("{name}", trust_remote_code=True)   # the custom modules are in l2v_st.py
emb = model.encode(["hello world"])                        # = l2v.load(artifact).encode(["hello world"])
q = model.encode(["what is a cat?"], prompt="Retrieve passages")   # sentence-transformers >= 6: the prompt
# is the l2v instruction; any version: model.encode([("Retrieve passages", "what is a cat?")])
```

config.json flags: `{json.dumps(flags)}`. Pooling module: `{pooling_type}`. Engines that do not run the custom
module (TEI, vLLM, llama.cpp) read these flags and `1_Pooling/config.json`; they pool over every token (BOS and
instructions included) and prepend prompts as raw text, so their vectors approximate, not equal, the ones above.
"""
