"""Tiny random-weight sentence-transformers folders, written file by file as the hub's folders are
(EmbeddingGemma: gemma3_text bidirectional + mean + 2 Dense + Normalize + prompts; Qwen3-Embedding: causal
+ last token + eos appended by the tokenizer + left padding + instruction prompts; ...), so that the real
sentence-transformers library can load them as the oracle. No hub, no downloads."""
from __future__ import annotations

import json
from pathlib import Path

from tiny import make_backbone, make_tokenizer, tokenizer_object

GEMMA_PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: ",
                 "Clustering": "task: clustering | query: "}
QWEN_PROMPTS = {"query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:",
                "document": ""}
ACT = {"Identity": "torch.nn.modules.linear.Identity", "Tanh": "torch.nn.modules.activation.Tanh",
       "GELU": "torch.nn.modules.activation.GELU"}


def tokenizer(kind: str = "bos", padding_side: str = "right", extra_special: bool = False):
    """kind "bos": BOS prepended (Llama/Gemma style); "eos": eos appended by the post-processor
    (Qwen3-Embedding's updated tokenizer). Pad token = eos. `extra_special`: one added special token
    (`<image_soft_token>`) past the base vocabulary, as Gemma 3 has."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    if kind == "bos":
        tok = make_tokenizer()
    else:
        obj = tokenizer_object().__class__.from_str(tokenizer_object().to_str())
        obj.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
        tok = PreTrainedTokenizerFast(tokenizer_object=obj, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.pad_token = "</s>"
    tok.padding_side = padding_side
    if extra_special:
        tok.add_special_tokens({"additional_special_tokens": ["<image_soft_token>"]})
    return tok


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _dense(folder: Path, i: int, n_in: int, n_out: int, act: str, bias: bool, seed: int) -> None:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed + 100 + i)
    lin = torch.nn.Linear(n_in, n_out, bias=bias)
    _write(folder / "config.json", {"in_features": n_in, "out_features": n_out, "bias": bias,
                                    "activation_function": ACT[act]})
    save_file({f"linear.{k}": v.contiguous() for k, v in lin.state_dict().items()}, str(folder / "model.safetensors"))


def save_st_folder(path, arch: str = "llama", *, pooling: str = "mean", include_prompt: bool = True,
                   dense=(), normalize: bool = True, prompts: dict | None = None,
                   default_prompt_name: str | None = None, truncate_dim: int | None = None,
                   similarity: str | None = "cosine", tok_kind: str = "bos", padding_side: str = "right",
                   extra_special: bool = False, max_seq_length: int | None = 128, seed: int = 0,
                   legacy_pooling: bool = True, extra_modules=(), **config):
    """A sentence-transformers folder at `path`. `dense`: [(out_features, activation, bias), ...];
    `config`: overrides of the backbone config (e.g. use_bidirectional_attention=True, is_causal=False);
    `extra_modules`: [(type, folder)] appended to modules.json (to test refusals)."""
    path = Path(path)
    tok = tokenizer(tok_kind, padding_side, extra_special)
    if extra_special:
        config.setdefault("vocab_size", len(tok) - 1)  # the special token has no embedding row
    model = make_backbone(arch, "sdpa", seed, **config)
    model.save_pretrained(str(path), safe_serialization=True)
    tok.save_pretrained(str(path))
    hidden = model.config.hidden_size
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    _write(path / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    if legacy_pooling:
        pool_cfg = {"word_embedding_dimension": hidden, **{k: False for k in (
            "pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")}}
        key = {"mean": "mean_tokens", "cls": "cls_token", "max": "max_tokens", "lasttoken": "lasttoken",
               "weightedmean": "weightedmean_tokens", "mean_sqrt_len_tokens": "mean_sqrt_len_tokens"}[pooling]
        pool_cfg[f"pooling_mode_{key}"] = True
    else:
        pool_cfg = {"embedding_dimension": hidden, "pooling_mode": pooling}
    _write(path / "1_Pooling" / "config.json", {**pool_cfg, "include_prompt": include_prompt})
    n_in = hidden
    for i, (n_out, act, bias) in enumerate(dense):
        idx = len(modules)
        folder = f"{idx}_Dense"
        _dense(path / folder, i, n_in, n_out, act, bias, seed)
        modules.append({"idx": idx, "name": str(idx), "path": folder, "type": "sentence_transformers.models.Dense"})
        n_in = n_out
    if normalize:
        idx = len(modules)
        (path / f"{idx}_Normalize").mkdir()
        modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    for kind, folder in extra_modules:
        idx = len(modules)
        (path / folder).mkdir(exist_ok=True)
        modules.append({"idx": idx, "name": str(idx), "path": folder, "type": kind})
    _write(path / "modules.json", modules)
    st_cfg = {"__version__": {"sentence_transformers": "5.1.0", "transformers": "4.56.0", "pytorch": "2.8.0"},
              "prompts": prompts or {}, "default_prompt_name": default_prompt_name, "model_type": "SentenceTransformer",
              "similarity_fn_name": similarity}
    if truncate_dim is not None:
        st_cfg["truncate_dim"] = truncate_dim
    _write(path / "config_sentence_transformers.json", st_cfg)
    return path


# The stacks of the issue, each a ready folder recipe: name -> kwargs of save_st_folder
STACKS = {
    "gemma3-bidir-mean-2dense-norm": dict(arch="gemma3_text", use_bidirectional_attention=True, pooling="mean",
                                          dense=[(96, "Identity", False), (64, "Identity", False)],
                                          prompts=GEMMA_PROMPTS, extra_special=True),
    "qwen3-causal-last-eos-left": dict(arch="qwen3", pooling="lasttoken", tok_kind="eos", padding_side="left",
                                       prompts=QWEN_PROMPTS),
    "llama-mean-noprompt": dict(arch="llama", pooling="mean", include_prompt=False,
                                prompts={"query": "query: ", "passage": "passage: "}, default_prompt_name="query"),
    "llama-last": dict(arch="llama", pooling="lasttoken", tok_kind="eos", padding_side="left",
                       prompts={"query": "Instruct: find the answer\nQuery: "}),
    "mistral-mean": dict(arch="mistral", pooling="mean", normalize=False, prompts={"query": "query: "}),
    "mistral-last": dict(arch="mistral", pooling="lasttoken", tok_kind="eos", prompts={"query": "query: "}),
    "llama-matryoshka": dict(arch="llama", pooling="mean", dense=[(48, "Tanh", True)], truncate_dim=24,
                             prompts={"query": "query: "}),
}
# texts for parity: mixed lengths, a prompt-like prefix inside a text, a CJK text, an empty string
PARITY_TEXTS = ["The quick brown fox jumps over the lazy dog.", "hello",
                "Padding tokens must never change the embedding of a real token, whatever the batch holds.",
                "query: a text that starts like a prompt", "Embedding models map text to vectors.", "天气很好", ""]
