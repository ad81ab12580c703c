"""The battery of issue 12, as a careless user would run it: real CLI processes (killed, terminated, run
twice at once), real file systems (a full or read-only tmpfs where this machine lets us mount one),
damaged artifacts. One tiny model and one artifact for the whole directory.

The tiny model has a 131,072-position context (RoPE: a config number, no table) and the artifact is
exported with that max_length and no document cut, so one long text really can ask for terabytes."""
from __future__ import annotations

import shutil

import pytest

from rel_helpers import CONTEXT  # noqa: E402


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    from tiny import make_backbone, make_tokenizer

    path = tmp_path_factory.mktemp("rel-model") / "tiny"
    make_backbone("llama", "sdpa", 0, max_position_embeddings=CONTEXT).save_pretrained(str(path))
    make_tokenizer().save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def art(model_dir, tmp_path_factory):
    import l2v

    out = tmp_path_factory.mktemp("rel-art") / "art"
    return l2v.export_model(str(model_dir), out, max_length=CONTEXT, doc_max_length=0, progress=False)


@pytest.fixture()
def copy(art, tmp_path):
    dst = tmp_path / "art"
    shutil.copytree(art, dst)
    return dst
