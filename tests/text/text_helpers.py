"""Our side of the parity tests: Preprocessor rows -> EmbeddingModel (the exported graph's torch twin)."""
import numpy as np
import torch

from l2v.model.encoder import EmbeddingModel
from l2v.text import Preprocessor
from l2v.text.presets import build_text_spec


def embed(pre: Preprocessor, model: EmbeddingModel, items, together: bool = False) -> np.ndarray:
    rows = pre.rows(items)
    batches = [pre.pad(rows)] if together else [pre.pad([r]) for r in rows]
    with torch.no_grad():
        out = torch.cat([model(**{k: torch.from_numpy(v) for k, v in b.items()}) for b in batches]).numpy()
    return out.reshape(-1, pre.views, out.shape[-1]).mean(1)


def llm2vec_pre(tok, mode="clean", pooling="mean", chat="none", max_length=512, doc_max_length=400,
                model_type="llama"):
    spec = build_text_spec("llm2vec", pooling, max_length, chat_template=chat, text_mode=mode,
                           doc_max_length=doc_max_length, model_type=model_type)
    return Preprocessor(tok, spec)


def ids_of(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]
