"""Tiny random-weight models and a real (trained-in-code) BPE tokenizer: no hub, no downloads."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

ARCHS = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text")
CORPUS_EXTRA = [
    "The quick brown fox jumps over the lazy dog.",
    "Embedding models map text to vectors; similar texts get nearby vectors.",
    "Padding tokens must never change the embedding of a real token.",
]


@lru_cache(maxsize=1)
def tokenizer_object():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    lines = resources.files("l2v.data").joinpath("validation.txt").read_text(encoding="utf-8").splitlines()
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines + CORPUS_EXTRA, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def make_tokenizer():
    """A fast tokenizer with BOS added, eos, unk and deliberately no pad token (like many LLMs)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer_object(), bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def make_config(arch: str, attn: str = "eager", **overrides):
    from transformers import AutoConfig

    kw = dict(vocab_size=512,  # > tokenizer size, as in real models (some tokenizer classes add a pad)
              hidden_size=64, intermediate_size=128,
              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              bos_token_id=1, eos_token_id=2, pad_token_id=None, tie_word_embeddings=True)
    if arch.startswith("gemma") or arch == "qwen3":
        kw["head_dim"] = 16
    if arch in ("gemma2", "gemma3_text"):
        kw.update(sliding_window=4, layer_types=["sliding_attention", "full_attention"])
    kw.update(overrides)
    cfg = AutoConfig.for_model(arch, **kw)
    cfg._attn_implementation = attn
    return cfg


def make_backbone(arch: str, attn: str = "eager", seed: int = 0, **overrides):
    import torch
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_config(make_config(arch, attn, **overrides), attn_implementation=attn)
    return model.float().eval()


def save_model_dir(path, arch: str = "llama", seed: int = 0):
    """A local HF directory (config.json + model.safetensors + tokenizer), as users have."""
    model = make_backbone(arch, "eager" if arch == "gemma2" else "sdpa", seed)  # gemma2 has no sdpa path
    model.save_pretrained(str(path), safe_serialization=True)
    make_tokenizer().save_pretrained(str(path))
    return path
