import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_llama_artifact(tmp_path_factory):
    """A tiny random llama exported by l2v (max_length 64): shared by the serving and packaging tests."""
    import l2v
    from tiny import save_model_dir

    root = tmp_path_factory.mktemp("tiny_llama")
    base = save_model_dir(root / "base", "llama")
    return l2v.export_model(str(base), root / "tiny_llama", max_length=64, progress=False)
