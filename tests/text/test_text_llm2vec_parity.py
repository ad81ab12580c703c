"""Numeric parity with llm2vec 0.2.3, re-implemented line by line in llm2vec_reference.py.

Parity is asserted for each text embedded alone (batch_size=1): the reference runs positions 0..n-1
then, exactly like our graph. Padded batches are covered by test_reference_padding_quirk.
"""
import numpy as np
import pytest

from l2v.model.encoder import EmbeddingModel
from llm2vec_reference import RefLLM2Vec
from text_helpers import embed, llm2vec_pre

INSTR = "Given a news headline, retrieve related articles"
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Embedding models map text to vectors.",
         "café au lait, naïve résumé 北京欢迎你", "x"]
PAIRS = [[INSTR, t] for t in TEXTS] + [["  Retrieve:  ", "The year after"]]
EDGE = ["", [INSTR, ""], " ".join(["the"] * 30), "你好" * 20, [INSTR, " ".join(["the"] * 40)],
        [INSTR, "the year after"], "text with the !@#$%^&*() separator inside"]
NAMES = {"none": "", "mistral": "mistralai/Mistral-7B-Instruct-v0.2", "qwen2": "Qwen/Qwen2-7B-Instruct",
         "gemma": "google/gemma-2-9b-it"}


def _close(a, b, tol=2e-5):
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max()), np.abs(a - b).max()


def _ref(backbone, tok, pooling, chat="none", max_length=512, doc_max_length=400):
    return RefLLM2Vec(backbone, tok, pooling, max_length, doc_max_length, name_or_path=NAMES[chat])


@pytest.mark.parametrize("pooling,chat", [("mean", "none"), ("weighted_mean", "none"), ("eos_token", "none"),
                                          ("mean", "mistral"), ("weighted_mean", "qwen2"), ("eos_token", "gemma")])
def test_compat_matches_reference_on_everything(tok, backbone, pooling, chat):
    items = [TEXTS[0], PAIRS[0], PAIRS[-1]] + EDGE
    ref = _ref(backbone, tok, pooling, chat, max_length=24, doc_max_length=16)
    expected = np.concatenate([ref.encode([it], batch_size=1) for it in items])
    pre = llm2vec_pre(tok, "compat", pooling, chat, max_length=24, doc_max_length=16)
    got = embed(pre, EmbeddingModel(backbone, pooling), [tuple(i) if isinstance(i, list) else i for i in items])
    _close(got, expected)


def test_compat_matches_llama3_template_with_special_tokens(chat_tok, chat_backbone):
    items = [TEXTS[0], PAIRS[0], [INSTR, ""], [INSTR, "the year after"]]
    for pooling in ("mean", "eos_token"):
        ref = RefLLM2Vec(chat_backbone, chat_tok, pooling, name_or_path="meta-llama/Meta-Llama-3-8B-Instruct")
        expected = np.concatenate([ref.encode([it], batch_size=1) for it in items])
        got = embed(llm2vec_pre(chat_tok, "compat", pooling, "llama3"), EmbeddingModel(chat_backbone, pooling),
                    [tuple(i) if isinstance(i, list) else i for i in items])
        _close(got, expected)


@pytest.mark.parametrize("pooling", ["mean", "weighted_mean"])
def test_clean_matches_reference_on_ordinary_input(tok, backbone, pooling):
    """Strings, pairs and long documents (doc_max_length) where the reference has no quirk."""
    items = TEXTS + PAIRS + [" ".join(["The"] + ["the"] * 29)]  # 'the' after "[INST] " is the count quirk
    ref = _ref(backbone, tok, pooling, "mistral", doc_max_length=16)
    expected = np.concatenate([ref.encode([it], batch_size=1) for it in items])
    got = embed(llm2vec_pre(tok, "clean", pooling, "mistral", doc_max_length=16), EmbeddingModel(backbone, pooling),
                [tuple(i) if isinstance(i, list) else i for i in items])
    _close(got, expected)


def test_clean_departs_from_reference_only_on_its_quirks(tok, backbone):
    quirks = [[INSTR, ""], [INSTR, " ".join(["the"] * 40)], [INSTR, "the year after"], "你好" * 20]
    ref = _ref(backbone, tok, "mean", max_length=40, doc_max_length=16)  # instruction 32 tokens + 16 > 40
    expected = np.concatenate([ref.encode([it], batch_size=1) for it in quirks])
    got = embed(llm2vec_pre(tok, "clean", max_length=40, doc_max_length=16), EmbeddingModel(backbone, "mean"),
                [tuple(i) for i in quirks[:3]] + quirks[3:])
    assert (np.abs(got - expected).max(1) > 1e-4).all()


def test_reference_padding_quirk(tok, backbone):
    """The reference gives padded rows arange positions (shifted by the padding). Rotary embeddings see
    only position differences, so this moves its vectors by rounding only; ours are batch-invariant."""
    items = TEXTS + PAIRS
    ref = _ref(backbone, tok, "mean")
    alone = np.concatenate([ref.encode([it], batch_size=1) for it in items])
    # the reference decides "strings or pairs" from the first item only, so one call per kind
    batched = np.concatenate([ref.encode(TEXTS, batch_size=8), ref.encode(PAIRS, batch_size=8)])
    _close(batched, alone, tol=1e-4)
    pre = llm2vec_pre(tok, "compat")
    model = EmbeddingModel(backbone, "mean")
    together = embed(pre, model, [tuple(i) if isinstance(i, list) else i for i in items], together=True)
    _close(together, alone)
