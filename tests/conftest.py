import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenVINO's converter and NNCF send usage telemetry from a forked child process unless they see CI=true. Forked from
# this multi-threaded pytest process on an offline machine, one such child blocked in getaddrinfo, ignored SIGTERM
# (a Python handler it inherited) and held pytest's exit for over 8 minutes. CI=true turns their telemetry off.
os.environ.setdefault("CI", "true")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def st_gemma(tmp_path_factory):
    """(folder, artifact): the EmbeddingGemma-like tiny sentence-transformers folder (tests/st_tiny.py) and
    its export (+ an int8-smooth variant), shared by the parity and integration tests."""
    import l2v
    from st_tiny import STACKS, save_st_folder

    base = tmp_path_factory.mktemp("st_gemma")
    folder = save_st_folder(base / "st", **STACKS["gemma3-bidir-mean-2dense-norm"])
    return folder, l2v.export_model(str(folder), base / "art", progress=False,
                                    quant=["int8-smooth:keep_sensitive=1"])  # calibration and gate with a head


@pytest.fixture(scope="session")
def tiny_llama_artifact(tmp_path_factory):
    """A tiny random llama exported by l2v (max_length 64): shared by the serving and packaging tests."""
    import l2v
    from tiny import save_model_dir

    root = tmp_path_factory.mktemp("tiny_llama")
    base = save_model_dir(root / "base", "llama")
    # text_mode "clean": an over-long instruction is a 400 (the llm2vec preset's default "compat" truncates)
    return l2v.export_model(str(base), root / "tiny_llama", max_length=64, progress=False, text_mode="clean")


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """tiny-llama and tiny-qwen2 checkpoints in the real layouts (bf16, sharded with an index), each with an
    LLM2Vec adapter pair (MNTP dir with config + tokenizer, supervised dir with the adapter only), written by
    bench/make_synthetic.py: {shape: (model dir, [mntp dir, supervised dir])}."""
    from synthetic import make_synth

    return make_synth(tmp_path_factory.mktemp("synth"))
