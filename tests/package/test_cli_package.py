"""l2v-package: one-line errors, never over a directory it did not write, --overwrite replaces its own."""
import json

import pytest

from l2v.cli.package import main
from l2v.errors import L2VError
from l2v.package.vendor import vendored_sources


def run(capsys, *args):
    code = main(list(args))
    return code, capsys.readouterr()


def test_writes_replaces_and_refuses(tiny_llama_artifact, tmp_path, capsys):
    out = tmp_path / "repo"
    code, io = run(capsys, str(tiny_llama_artifact), "--format", "triton", "--out", str(out), "--name", "tiny")
    assert code == 0 and "Triton model repository at" in io.out
    assert json.loads((out / "l2v-package.json").read_text())["format"] == "triton"
    code, io = run(capsys, str(tiny_llama_artifact), "--format", "triton", "--out", str(out))
    assert code == 2 and io.err.startswith("error: ") and "pass --overwrite" in io.err
    code, io = run(capsys, str(tiny_llama_artifact), "--format", "hf", "--out", str(out), "--overwrite")
    assert code == 0 and json.loads((out / "l2v-package.json").read_text())["format"] == "hf"
    assert not (out / "tiny_encoder").exists()  # replaced, not merged into
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no temporary or backup left


def test_foreign_directory_and_bad_input(tiny_llama_artifact, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    code, io = run(capsys, str(tiny_llama_artifact), "--format", "hf", "--out", str(mine), "--overwrite")
    assert code == 2 and "did not write; refusing to replace it" in io.err
    assert (mine / "notes.txt").read_text() == "keep"
    code, io = run(capsys, str(tmp_path), "--format", "hf", "--out", str(tmp_path / "x"))
    assert code == 2 and "is not an l2v artifact" in io.err and "Traceback" not in io.err
    with pytest.raises(SystemExit) as e:
        main([str(tiny_llama_artifact), "--format", "hf", "--out", str(tmp_path / "y"), "--prompt", "noequals"])
    assert e.value.code == 2 and "is not NAME=INSTRUCTION" in capsys.readouterr().err


def test_vendoring_refuses_what_it_cannot_copy():
    srcs = vendored_sources({"errors": "errors.py", "spec": "text/spec.py"}, prefix="l2v_")
    assert "from .l2v_errors import InputError" in srcs["l2v_spec.py"]
    with pytest.raises(L2VError, match="imports l2v.batch, which the vendored copy does not hold"):
        vendored_sources({"errors": "errors.py", "preprocess": "text/preprocess.py", "spec": "text/spec.py"})
