import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """tiny-llama and tiny-qwen2 checkpoints in the real layouts (bf16, sharded with an index), each with an
    LLM2Vec adapter pair (MNTP dir with config + tokenizer, supervised dir with the adapter only), written by
    bench/make_synthetic.py: {shape: (model dir, [mntp dir, supervised dir])}."""
    from synthetic import make_synth

    return make_synth(tmp_path_factory.mktemp("synth"))
