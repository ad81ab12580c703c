"""Fixtures for l2v-embed: one tiny exported artifact for the session, a corpus and the output of an
uninterrupted run (helpers in embed_helpers.py)."""
import pytest

pytest.importorskip("pyarrow")
from embed_helpers import corpus, run, write_jsonl  # noqa: E402


@pytest.fixture(scope="session")
def artifact(tmp_path_factory):
    """A tiny random-weight qwen2 exported through l2v-export's own pipeline (max_length 64)."""
    import l2v
    from tiny import save_model_dir

    root = tmp_path_factory.mktemp("embed_art")
    base = save_model_dir(root / "base", "qwen2")
    # text_mode "clean": an over-long instruction is refused (the llm2vec preset defaults to "compat",
    # which truncates as llm2vec does), so the refusal path of the job is exercised
    return l2v.export_model(str(base), root / "art", max_length=64, torch_weights=False, progress=False,
                            text_mode="clean")


@pytest.fixture(scope="session")
def rows():
    return corpus(240)


@pytest.fixture(scope="session")
def jsonl(tmp_path_factory, rows):
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", rows)


@pytest.fixture(scope="session")
def reference(artifact, jsonl, tmp_path_factory):
    """The output directory of an uninterrupted local run over the 240-row corpus (15 windows)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    run(artifact, [jsonl], out)
    return out
