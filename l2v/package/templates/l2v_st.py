"""sentence-transformers modules for l2v packages (shipped as `l2v_st.py`, loaded with trust_remote_code).

`L2VTransformer` runs l2v's own preprocessing (vendored next to it: l2v_preprocess.py, l2v_spec.py,
l2v_batch.py, l2v_errors.py), runs the backbone with l2v's explicit bidirectional mask (l2v_masks.py;
independent of the transformers version and of config.json's flags), and hands the next module the
pooled-token mask as `attention_mask`, so ST's standard `Pooling` (mean, cls, lasttoken) pools exactly
l2v's tokens: BOS, the instruction and the template head are attended to but not pooled. A prompt is the
l2v instruction: with sentence-transformers >= 6, `encode(texts, prompt="Retrieve passages")` equals
`l2v.load(artifact).encode([("Retrieve passages", t) for t in texts])`; with any version, pass the pairs
themselves: `encode([("Retrieve passages", t) for t in texts])`.

`L2VPooling` is l2v's pooling (l2v_pooling.py) where ST's differs (weighted mean: l2v weights 1..n over
the pooled span). `L2VTruncate` keeps the first `dim` dimensions (Matryoshka), before normalisation.
"""
import json
import os
from types import SimpleNamespace

import torch

try:  # sentence-transformers >= 5.4 (the `base.modules` layout)
    from sentence_transformers.base.modules.input_module import InputModule as _Input
    from sentence_transformers.base.modules.module import Module as _Module
except ImportError:  # 5.0 - 5.3
    from sentence_transformers.models import InputModule as _Input
    from sentence_transformers.models import Module as _Module

from .l2v_masks import build_masks, position_ids_from_mask
from .l2v_pooling import pool
from .l2v_preprocess import Preprocessor
from .l2v_spec import TextSpec

CONFIG_NAME = "l2v_sentence_transformers.json"


class L2VTransformer(_Input):
    """preprocess: texts or (instruction, text) pairs (+ prompt = instruction) -> input_ids, attention_mask,
    pooling_mask (right padded); forward: backbone -> token_embeddings, attention_mask := the pooled tokens."""

    save_in_root = True
    config_file_name = CONFIG_NAME

    def __init__(self, model_dir: str, config: dict = None, model=None, tokenizer=None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if config is None:
            with open(os.path.join(model_dir, CONFIG_NAME), encoding="utf-8") as f:
                config = json.load(f)
        self.l2v_config = config
        tok = tokenizer or AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        tok.pad_token = config["pad_token"]
        tok.padding_side = "right"  # positions come from the mask: the padding side never changes a vector
        self._tokenizer = tok
        self.preprocessor = Preprocessor(tok, TextSpec.from_dict({**config["text"], "padding_side": "right"}))
        if self.preprocessor.views != 1:
            raise ValueError("this l2v package renders several prompts per text (MetaEOL); ST cannot average them")
        self.auto_model = model or AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        self.causal = bool(config.get("causal", False))
        self.mask_mode = config.get("mask", "explicit")  # "config": rely on config.json's flags instead
        self.pool_over = config.get("pool_over", "pooling_mask")
        # l2v's own window: config.json's sliding_window is rewritten for the engines' conventions
        self._mask_config = SimpleNamespace(layer_types=getattr(self.auto_model.config, "layer_types", None),
                                            sliding_window=config.get("sliding_window"))
        self._prompts = sorted(_package_prompts(model_dir), key=len, reverse=True)

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def max_seq_length(self) -> int:
        return self.preprocessor.spec.max_length

    @property
    def modalities(self):
        return ["text"]

    def get_embedding_dimension(self) -> int:
        return int(self.auto_model.config.hidden_size)

    get_word_embedding_dimension = get_embedding_dimension

    def preprocess(self, inputs, prompt=None, **kwargs):
        items = []
        for x in inputs:
            if isinstance(x, (tuple, list)) and len(x) == 2:  # an explicit (instruction, text) pair
                items.append((x[0], x[1]))
            else:
                items.append((prompt, x) if prompt else x)
        return {k: torch.from_numpy(v) for k, v in self.preprocessor.batch(items).items()}

    def tokenize(self, texts, **kwargs):
        """sentence-transformers 5.x hands over `prompt + text` as one string: a leading prompt of this
        package (config_sentence_transformers.json) becomes the instruction again, so `prompt_name=` works
        there too. (5.x itself cannot tell `encode(p + t)` from `encode(t, prompt=p)` either.)"""
        return self.preprocess([self._split_prompt(t) for t in texts])

    def _split_prompt(self, text):
        if isinstance(text, str):
            for p in self._prompts:
                if text.startswith(p):
                    return (p, text[len(p):])
        return text

    def forward(self, features, **kwargs):
        ids, am = features["input_ids"], features["attention_mask"]
        if self.mask_mode == "explicit":
            dtype = self.auto_model.get_input_embeddings().weight.dtype
            mask = build_masks(self._mask_config, am, dtype, self.causal)
        else:
            mask = am
        out = self.auto_model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(am),
                              use_cache=False)
        features["token_embeddings"] = out.last_hidden_state
        features["token_attention_mask"] = am
        if self.pool_over == "pooling_mask":
            features["attention_mask"] = features["pooling_mask"]
        return features

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        with open(os.path.join(output_path, CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump(self.l2v_config, f, indent=1)
        self._tokenizer.save_pretrained(output_path)
        self.auto_model.save_pretrained(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, input_path):
        # exactly one parameter: sentence-transformers 5.x and 6.x then pass the module's local directory
        return cls(input_path)


def _package_prompts(model_dir: str) -> list:
    path = os.path.join(model_dir, "config_sentence_transformers.json")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [p for p in (json.load(f).get("prompts") or {}).values() if p]


class _Configured(_Module):
    """A module whose whole state is a small JSON config in its directory."""

    config_keys: list = []

    def save(self, output_path: str, *args, **kwargs) -> None:
        with open(os.path.join(output_path, "config.json"), "w") as f:
            json.dump({k: getattr(self, k) for k in self.config_keys}, f)

    @classmethod
    def load(cls, input_path):  # one parameter: the module's own local directory (see L2VTransformer.load)
        with open(os.path.join(input_path, "config.json")) as f:
            cfg = json.load(f)
        return cls(**{k: cfg[k] for k in cls.config_keys})


class L2VPooling(_Configured):
    """l2v's pooling over `pooling_mask` (the token mask of the input module), exactly as in the graph."""

    config_keys = ["word_embedding_dimension", "l2v_pooling"]

    def __init__(self, word_embedding_dimension: int, l2v_pooling: str):
        super().__init__()
        self.word_embedding_dimension, self.l2v_pooling = int(word_embedding_dimension), l2v_pooling

    def forward(self, features, **kwargs):
        features["sentence_embedding"] = pool(features["token_embeddings"], features["token_attention_mask"],
                                              features["pooling_mask"], self.l2v_pooling)
        return features

    def get_sentence_embedding_dimension(self) -> int:
        return self.word_embedding_dimension

    get_embedding_dimension = get_sentence_embedding_dimension


class L2VTruncate(_Configured):
    """Matryoshka: keep the first `dim` dimensions of the pooled vector (l2v truncates before normalising)."""

    config_keys = ["dim"]

    def __init__(self, dim: int):
        super().__init__()
        self.dim = int(dim)

    def forward(self, features, **kwargs):
        features["sentence_embedding"] = features["sentence_embedding"][:, : self.dim]
        return features

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    get_embedding_dimension = get_sentence_embedding_dimension
