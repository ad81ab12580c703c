import pytest


@pytest.fixture(scope="session")
def tok():
    from tiny import make_tokenizer

    t = make_tokenizer()
    t.pad_token = t.eos_token  # LLM2Vec's choice (llm2vec.py L96)
    t.padding_side = "left"
    return t


@pytest.fixture(scope="session")
def backbone():
    from tiny import make_backbone

    return make_backbone("llama", "eager")


@pytest.fixture(scope="session")
def chat_tok():
    """The tiny tokenizer plus Llama-3's chat tokens as real special tokens."""
    from tiny import make_tokenizer

    t = make_tokenizer()
    t.add_special_tokens({"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    t.pad_token = t.eos_token
    t.padding_side = "left"
    return t


@pytest.fixture(scope="session")
def chat_backbone(chat_tok):
    from tiny import make_backbone

    return make_backbone("llama", "eager", vocab_size=len(chat_tok))
