"""The typed artifact layer: manifest checks naming key and file, file records checked on load, schema 1
artifacts still loading, path traversal refused, one writer per output, stale work dirs swept."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import l2v
from l2v.artifact import Manifest, open_artifact, read_manifest
from l2v.errors import ArtifactError, InputError
from tiny import save_model_dir

DATA = os.path.join(os.path.dirname(__file__), "data")
TEXTS = ["a short text", "another, somewhat longer text about padding and vectors", ""]


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifact")
    base = save_model_dir(root / "hf", "llama")
    return l2v.export_model(str(base), root / "art", max_length=64, progress=False, text_mode="clean",
                            quant=["int8-smooth:keep_sensitive=1"])  # clean: what the schema 1 file records


@pytest.fixture()
def copy(art, tmp_path):
    dst = tmp_path / "art"
    shutil.copytree(art, dst)
    return dst


def _edit(path, fn):
    m = json.loads((path / "l2v.json").read_text())
    fn(m)
    (path / "l2v.json").write_text(json.dumps(m))


def test_manifest_round_trips(art):
    m = read_manifest(art)
    again = Manifest.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m and m.schema_version == 2
    assert set(m.variants) == {"fp32", "torch", "int8-smooth"}
    assert m.variants["int8-smooth"].main.path == "model_int8-smooth.onnx"


def test_every_file_is_recorded_with_its_size_and_sha256(art):
    """Issue 12 case 1: every file of the artifact (each variant's, torch/, the shared tokenizer files) is in
    the manifest with the size and sha256 it has on disk; only l2v.json itself is not."""
    from l2v.fileio import sha256_file

    m = read_manifest(art)
    recs = [r for v in m.variants.values() for r in v.files] + list(m.files)
    on_disk = {p.relative_to(art).as_posix() for p in art.rglob("*") if p.is_file()} - {"l2v.json"}
    assert {r.path for r in recs} == on_disk and any(r.path.startswith("torch/") for r in recs)
    for r in recs:
        assert (r.size, r.sha256) == ((art / r.path).stat().st_size, sha256_file(art / r.path)), r.path


@pytest.mark.parametrize("edit,pattern", [
    (lambda m: m.pop("graph"), "required key 'graph' is missing"),
    (lambda m: m["graph"].update(dim="wide"), "key 'graph.dim' must be an integer"),
    (lambda m: m["variants"]["fp32"].update(kind=3), "key 'variants.fp32.kind' must be a string"),
    (lambda m: m.update(default_variant="nope"), "default_variant 'nope' is not one of the variants"),
    (lambda m: m.update(schema_version=99), "schema_version 99 is not supported"),
    (lambda m: m["variants"]["fp32"]["files"][0].update(path="../../other/model.onnx"), "outside the artifact"),
    (lambda m: m["variants"]["fp32"]["files"][0].update(path="/etc/passwd"), "outside the artifact"),
])
def test_edited_manifest_is_reported_by_key_and_file(copy, edit, pattern):
    _edit(copy, edit)
    with pytest.raises(ArtifactError, match=pattern) as e:
        l2v.load(copy)
    assert "l2v.json" in str(e.value) and "\n" not in str(e.value)


def test_manifest_that_is_not_an_object(copy):
    (copy / "l2v.json").write_text("[]")
    with pytest.raises(ArtifactError, match="must be a JSON object"):
        l2v.load(copy)


def test_truncated_model_file_is_named_on_load(copy):
    p = copy / "model.onnx"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match=r"'model.onnx' .* has \d+ bytes, the manifest records \d+"):
        l2v.load(copy)
    assert l2v.load(copy, backend="torch").encode(TEXTS).shape == (3, 64)  # the torch weights do not need it


def test_flipped_bytes_are_caught_by_verify_not_by_size(copy):
    p = copy / "model.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2: len(data) // 2 + 4096] = bytes(255 - b for b in data[len(data) // 2: len(data) // 2 + 4096])
    p.write_bytes(bytes(data))
    l2v.load(copy)  # same size: the cheap check passes
    with pytest.raises(ArtifactError, match="'model.onnx' .* does not match its recorded sha256"):
        l2v.load(copy, verify=True)
    from l2v.quantize import quantize_artifact

    with pytest.raises(ArtifactError, match="does not match its recorded sha256"):  # never quantize a corrupt graph
        quantize_artifact(copy, ["int8-dynamic"], speed=False)


def test_torch_weights_are_checked_too(copy):
    p = copy / "torch" / "model.safetensors"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="torch/model.safetensors"):
        l2v.load(copy, backend="torch")
    l2v.load(copy)  # the onnx variant does not need them


def test_manifest_dim_must_match_the_graph(copy):
    _edit(copy, lambda m: m["graph"].update(dim=32))
    with pytest.raises(ArtifactError, match="outputs 64 dimensions, l2v.json says dim 32"):
        l2v.load(copy)


def test_schema1_artifact_of_the_previous_release_still_loads(art, tmp_path):
    """l2v.json as the previous release wrote it (tests/artifact/data, exported by main at a1c0c25 from the
    same tiny model and options) over this export's files: every variant loads and gives the same vectors."""
    old = tmp_path / "old"
    shutil.copytree(art, old)
    os.replace(old / "model_int8-smooth.onnx", old / "model_int8_smooth.onnx")
    shutil.copy(os.path.join(DATA, "schema1_l2v.json"), old / "l2v.json")
    m = read_manifest(old)
    assert m.variants["int8-smooth"].main.path == "model_int8_smooth.onnx" and m.variants["torch"].kind == "torch"
    assert m.graph.dim == 64 and m.max_length == 64 and m.variants["fp32"].main.size is None
    for kwargs in ({}, {"variant": "int8-smooth"}, {"backend": "torch"}):
        got, want = l2v.load(old, **kwargs).encode(TEXTS), l2v.load(art, **kwargs).encode(TEXTS)
        assert np.abs(got - want).max() <= 1e-6, kwargs
    with pytest.raises(ArtifactError, match="no recorded checksum"):
        l2v.load(old, verify=True)
    from l2v.quantize import quantize_artifact

    quantize_artifact(old, ["int8-dynamic"], speed=False, verify=False)  # upgrades the manifest to schema 2
    m2 = json.loads((old / "l2v.json").read_text())
    assert m2["schema_version"] == 2 and all(f["sha256"] for v in m2["variants"].values() for f in v["files"])
    l2v.load(old, verify=True)


def test_variant_file_names_are_unique(copy):
    from l2v.quantize import quantize_artifact

    quantize_artifact(copy, ["int8-dynamic", "int8-dynamic:name=int8_dynamic"], speed=False)
    m = read_manifest(copy)
    assert m.variants["int8-dynamic"].main.path != m.variants["int8_dynamic"].main.path
    with pytest.raises(InputError, match="differs from the existing 'int8-dynamic' only in case"):
        quantize_artifact(copy, ["int8-dynamic:name=INT8-dynamic"], speed=False)


def test_second_writer_to_the_same_out_is_refused(art, tmp_path):
    from l2v.artifact import ArtifactWriter

    out = tmp_path / "r"
    with ArtifactWriter(out) as first:
        with pytest.raises(ArtifactError, match=r"another l2v process \(pid \d+"):
            ArtifactWriter(out).__enter__()
        assert first.tmp.is_dir()
    assert not first.tmp.exists() and not out.exists()


def test_dead_writers_leftovers_are_swept_and_reported(art, tmp_path, capfd):
    out = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    stale = tmp_path / ".r.tmp-l2v"
    stale.mkdir()
    (stale / ".l2v-owner.json").write_text(json.dumps({"pid": dead, "host": os.uname().nodename}))
    (stale / "model.onnx").write_bytes(b"x" * 1000)
    old_style = tmp_path / ".r.tmp-abc123"  # what earlier releases left: no owner file, old
    old_style.mkdir()
    os.utime(old_style, (1, 1))
    from l2v.artifact import ArtifactWriter

    with ArtifactWriter(out):
        pass
    err = capfd.readouterr().err
    assert not stale.exists() and not old_style.exists()
    assert "left behind by an interrupted run" in err and ".r.tmp-l2v" in err


def test_open_artifact_gives_one_view(art):
    a = open_artifact(art)
    batch = a.preprocessor().batch(TEXTS)
    assert batch.input_ids.shape[0] == 3 and a.tokenizer.pad_token == a.manifest.tokenizer.pad_token
    assert a.text_spec.pooling == a.manifest.graph.pooling == "mean"
