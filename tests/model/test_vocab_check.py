"""The tokenizer-size check (l2v.model.load.check_vocab): added special tokens past the embedding rows
are accepted when the tokenizer never inserts them by itself (Gemma 3's `<image_soft_token>`); ordinary
tokens or inserted ones past the rows are refused, naming the ids."""
import pytest

from l2v.errors import ModelLoadError
from l2v.model.load import check_vocab
from tiny import make_tokenizer


def test_added_special_token_past_the_rows_is_accepted():
    tok = make_tokenizer()
    rows = len(tok)
    check_vocab(tok, rows)
    tok.add_special_tokens({"additional_special_tokens": ["<image_soft_token>"]})
    check_vocab(tok, rows)  # one special token past the rows: text does not produce it unless it spells it


def test_ordinary_or_inserted_tokens_past_the_rows_are_refused():
    tok = make_tokenizer()
    rows = len(tok)
    with pytest.raises(ModelLoadError, match=rf"has {rows} tokens but the model embeds only {rows - 1}.*ordinary"):
        check_vocab(tok, rows - 1)
    tok.add_tokens(["plainword"])
    with pytest.raises(ModelLoadError, match=rf"\[{rows}\] beyond the rows are ordinary tokens"):
        check_vocab(tok, rows)
    tok = make_tokenizer()
    tok.add_special_tokens({"pad_token": "<pad>"})
    with pytest.raises(ModelLoadError, match="inserted by the tokenizer"):
        check_vocab(tok, rows)  # the pad id goes through the embedding on every padded batch
