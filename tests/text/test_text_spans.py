"""Pooled spans against hand-computed expectations, on the tiny byte-level BPE tokenizer.

Facts of that tokenizer used below (checked in test_tokenizer_facts): BOS=1 is added, eos=2; "the" alone
is 't','he' but after a space it is one token 'Ġthe'; "Find documents" is 10 tokens; a CJK character
is 3 byte tokens; an accented Latin letter is 1 token ('Ã©').
"""
import numpy as np
import pytest
import torch

from l2v.model.encoder import EmbeddingModel
from l2v.text import Preprocessor, TextSpec
from text_helpers import ids_of, llm2vec_pre

INSTR = "Find documents"


def test_tokenizer_facts(tok):
    assert tok("x")["input_ids"][0] == 1 and tok.eos_token_id == 2
    assert tok.convert_ids_to_tokens(ids_of(tok, "the")) == ["t", "he"]
    assert tok.convert_ids_to_tokens(ids_of(tok, " the")) == ["Ġthe"]
    assert len(ids_of(tok, INSTR)) == 10
    assert len(ids_of(tok, "你")) == 3 and len(ids_of(tok, "é")) == 1


@pytest.mark.parametrize("mode", ["clean", "compat"])
def test_instruction_tokens_are_not_pooled(tok, mode):
    (ids, pooled), = llm2vec_pre(tok, mode).rows([(INSTR, "The year after")])
    # by hand: BOS, the 10 instruction tokens, the separating space alone ('Ġ': this vocabulary has no
    # 'ĠThe'), then 'The', 'Ġyear', 'Ġafter'
    assert ids == [1] + ids_of(tok, INSTR) + ids_of(tok, " ") + ids_of(tok, "The year after")
    assert pooled == [0] * 12 + [1] * 3


def test_count_rule_quirk_of_the_reference(tok):
    """llm2vec counts the document tokenised alone: 'the' alone is 2 tokens, inside the text 1 ('Ġthe'),
    so it pools one instruction token too. compat keeps that; clean pools by offsets."""
    clean = llm2vec_pre(tok, "clean").rows([(INSTR, "the year after")])[0]
    compat = llm2vec_pre(tok, "compat").rows([(INSTR, "the year after")])[0]
    assert clean[0] == compat[0] == [1] + ids_of(tok, INSTR) + ids_of(tok, " the year after")
    assert clean[1] == [0] * 11 + [1] * 3  # Ġthe Ġyear Ġafter
    assert compat[1] == [0] * 10 + [1] * 4  # + the instruction's last token 's'


@pytest.mark.parametrize("causal", [False, True])
def test_changing_the_instruction_changes_the_vector_only_through_attention(tok, backbone, causal):
    pre = llm2vec_pre(tok)
    model = EmbeddingModel(backbone, "mean", causal=causal)
    items = [(INSTR, "The year after"), ("Represent the text", "The year after"), (None, "The year after")]
    rows = pre.rows(items)
    spans = [[t for t, p in zip(ids, pooled) if p] for ids, pooled in rows]
    assert spans[0] == spans[1] == spans[2] == ids_of(tok, "The year after")  # the text's own tokens
    vecs = []
    for ids, pooled in rows:
        b = pre.pad([(ids, pooled)])
        t = {k: torch.from_numpy(v) for k, v in b.items()}
        with torch.no_grad():
            v = model(**t)[0]
            hidden = backbone(input_ids=t["input_ids"], attention_mask=_mask(t["attention_mask"], causal),
                              use_cache=False).last_hidden_state[0]
        sel = torch.tensor(pooled, dtype=torch.bool)
        assert torch.allclose(v, hidden[sel].mean(0), atol=1e-5)  # only the text positions are pooled
        vecs.append(v)
    assert (vecs[0] - vecs[1]).abs().max() > 1e-4  # the instruction still reaches them through attention


def _mask(attention_mask, causal):
    from l2v.model.masks import additive_mask, allowed_pairs

    return additive_mask(allowed_pairs(attention_mask, causal), torch.float32)


def test_empty_document(tok):
    head = [1] + ids_of(tok, INSTR + " ")  # "Find documents " ends in a lone 'Ġ'
    clean = llm2vec_pre(tok, "clean").rows([(INSTR, ""), ""])
    assert clean[0] == (head + [2], [0] * len(head) + [1])  # eos stands for the empty text
    assert clean[1] == ([1, 2], [0, 1])
    compat = llm2vec_pre(tok, "compat").rows([(INSTR, ""), ""])
    assert compat[0] == (head, [1] * len(head))  # reference: mean over `[-0:]`, the whole row
    assert compat[1] == ([1], [1])
    weighted = llm2vec_pre(tok, "compat", pooling="weighted_mean").rows([(INSTR, "")])
    assert weighted[0] == (head, [0] * len(head))  # reference: all weights 0, a zero vector


def test_document_longer_than_doc_max_length(tok):
    text = " ".join(["the"] * 30)  # 't','he' + 29 x 'Ġthe' = 31 tokens
    for mode in ("clean", "compat"):
        (ids, pooled), = llm2vec_pre(tok, mode, doc_max_length=10).rows([text])
        # by hand: int(30 words * 10/31) = 9 words = 10 tokens <= 10: stop
        assert ids == [1] + ids_of(tok, " ".join(["the"] * 9)) and len(ids) == 11
        assert pooled == [0] + [1] * 10


def test_long_text_without_spaces(tok):
    text = "你好" * 20  # one "word" of 120 byte tokens
    compat = llm2vec_pre(tok, "compat", doc_max_length=10).rows([text])[0]
    assert compat == ([1], [1])  # the reference's loop keeps int(1 * 10/120) = 0 words: empty
    clean = llm2vec_pre(tok, "clean", doc_max_length=10).rows([text])[0]
    # clean cuts at a token boundary: 3 characters = 9 tokens (a 4th would make 12 > 10)
    assert clean == ([1] + ids_of(tok, "你好你"), [0] + [1] * 9)


def test_instruction_plus_document_longer_than_max_length(tok):
    text = " ".join(["the"] * 10)
    item = [(INSTR, text)]  # BOS + 10 + 10 = 21 tokens, max_length 16
    ids, pooled = llm2vec_pre(tok, "clean", max_length=16).rows(item)[0]
    assert ids == [1] + ids_of(tok, INSTR) + ids_of(tok, " the") * 5
    assert pooled == [0] * 11 + [1] * 5  # the text's end is cut, the instruction is never pooled
    ids_c, pooled_c = llm2vec_pre(tok, "compat", max_length=16).rows(item)[0]
    assert ids_c == ids  # the reference truncates the joined text on the right
    # ... and pools the last len("the the ...") = 2 + 9 = 11 positions: 6 of them instruction tokens
    assert pooled_c == [0] * 5 + [1] * 11


def test_suffix_is_kept_when_truncating(tok):
    spec = TextSpec(max_length=20, templates=['This is "{text}" in one word:"'])
    ids, pooled = Preprocessor(tok, spec).rows([" ".join(["the"] * 20)])[0]
    suffix = ids_of(tok, '" in one word:"')
    assert len(ids) == 20 and ids[-len(suffix):] == suffix and pooled[-len(suffix):] == [1] * len(suffix)
    assert pooled[0] == 0 and sum(pooled) > len(suffix)  # some of the text survives, the prefix is not pooled


@pytest.mark.parametrize("mode", ["clean", "compat"])
def test_non_ascii(tok, mode):
    pre = llm2vec_pre(tok, mode)
    # by hand: (text, tokens, whether the separating space stays a lone 'Ġ' token, which is not pooled)
    cases = [("café 你好", 11, False),  # 'Ġc' 'a' 'f' 'Ã©' 'Ġ' + 2 x 3 byte tokens
             ("naïve résumé 北京欢迎你", 28, False),  # 'Ġn' ... + 5 x 3 byte tokens
             ("Ünïcödé ñ", 14, True)]  # 'Ġ' 'Ã' 'ľ' ...: no merge of the space with 'Ã'
    for text, n, lone in cases:
        (ids, pooled), = pre.rows([(INSTR, text)])
        assert ids == [1] + ids_of(tok, INSTR) + ids_of(tok, " " + text) and len(ids) == 11 + n
        assert pooled == [0] * (11 + lone) + [1] * (n - lone)
        (ids, pooled), = pre.rows([text])
        assert ids == [1] + ids_of(tok, text) and pooled == [0] + [1] * (len(ids) - 1)


def test_chat_template_suffix_is_pooled(chat_tok):
    eot = chat_tok.convert_tokens_to_ids("<|eot_id|>")
    head = ids_of(chat_tok, "<|start_header_id|>user<|end_header_id|>\n\n")
    for mode in ("clean", "compat"):
        (ids, pooled), = llm2vec_pre(chat_tok, mode, chat="llama3").rows([(INSTR, "the year after  ")])
        # trailing spaces stripped, as the reference does; the text is 'Ġthe' 'Ġyear' 'Ġafter'
        full = "<|start_header_id|>user<|end_header_id|>\n\nFind documents the year after<|eot_id|>"
        assert ids == chat_tok(full)["input_ids"] and ids[-1] == eot and ids[:2] == [1] + head[:1]
        n = 3 + 1 + (mode == "compat")  # + <|eot_id|>; compat: the count quirk adds one ('the' alone = 2)
        assert pooled == [0] * (len(ids) - n) + [1] * n


def test_eos_pooling_appends_eos(tok):
    (ids, pooled), = llm2vec_pre(tok, "clean", pooling="eos_token").rows(["the year  "])
    assert ids == [1] + ids_of(tok, "the year") + [2] and pooled[-1] == 1
    (ids, pooled), = llm2vec_pre(tok, "compat", pooling="eos_token").rows(["the year  "])
    assert ids == [1] + ids_of(tok, "the year </s>")  # the reference appends the string " </s>"


def test_padding_left_and_right_give_the_same_rows(tok):
    rows = llm2vec_pre(tok).rows(["a", (INSTR, "the year after")])
    left = llm2vec_pre(tok).pad(rows)
    assert left["attention_mask"][0].tolist()[-2:] == [1, 1] and left["attention_mask"][0][0] == 0
    assert np.array_equal(left["pooling_mask"].sum(1), [sum(p) for _, p in rows])
