"""A tiny llama artifact (random weights, real in-code tokenizer), exported once per session."""
import pytest


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory):
    import tiny

    from l2v.export.pipeline import export_model

    root = tmp_path_factory.mktemp("quant")
    src = tiny.save_model_dir(root / "hf", "llama")
    return export_model(str(src), root / "art", progress=False)


@pytest.fixture()
def artifact(tiny_artifact, tmp_path):
    """A private copy per test (quantize_artifact edits the artifact)."""
    import shutil

    dst = tmp_path / "art"
    shutil.copytree(tiny_artifact, dst)
    return dst


@pytest.fixture(scope="session")
def texts():
    from l2v.quantize.texts import default_calibration_texts, default_eval_texts

    return default_calibration_texts()[:24], default_eval_texts()[:24]
