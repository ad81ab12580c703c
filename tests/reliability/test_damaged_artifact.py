"""Cases 1, 4, 7 and 8: a damaged or untrusted artifact is an `ArtifactError` naming the file and the fix —
never a third-party exception, never silently wrong vectors — from Python and from the CLIs; variant
files never collide."""
import json
import os

import pytest

import l2v
from rel_helpers import call
from l2v.errors import ArtifactError, L2VError


def _edit(root, fn):
    m = json.loads((root / "l2v.json").read_text())
    fn(m)
    (root / "l2v.json").write_text(json.dumps(m))


def _same_size_garbage(path, byte=b"{"):
    path.write_bytes(byte * path.stat().st_size)


def _truncate(path, keep=0.5):
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def _unrecord_sizes(m):  # what a schema 1 artifact looks like: no sizes to catch truncation with
    for v in m["variants"].values():
        for f in v["files"]:
            f.pop("size", None), f.pop("sha256", None)


DAMAGE = {  # case: (damage, load kwargs, the file the message must name, what else it must say)
    "truncated model.onnx": (lambda r: _truncate(r / "model.onnx"), {}, "model.onnx", "truncated"),
    "empty model.onnx": (lambda r: (r / "model.onnx").write_bytes(b""), {}, "model.onnx", "has 0 bytes"),
    "truncated model.onnx, no sizes recorded": (
        lambda r: (_truncate(r / "model.onnx"), _edit(r, _unrecord_sizes)), {}, "model.onnx",
        "ONNX Runtime cannot load"),
    "empty model.onnx, no sizes recorded": (
        lambda r: ((r / "model.onnx").write_bytes(b""), _edit(r, _unrecord_sizes)), {}, "model.onnx",
        "ONNX Runtime cannot load"),
    "l2v.json is []": (lambda r: (r / "l2v.json").write_text("[]"), {}, "l2v.json", "must be a JSON object"),
    "l2v.json is not JSON": (lambda r: (r / "l2v.json").write_text("{"), {}, "l2v.json", "not valid JSON"),
    "missing key graph": (lambda r: _edit(r, lambda m: m.pop("graph")), {}, "l2v.json",
                          "required key 'graph' is missing"),
    "missing key variants.fp32.files": (lambda r: _edit(r, lambda m: m["variants"]["fp32"].pop("files")), {},
                                        "l2v.json", "'fp32' lists no files"),
    "missing key text.max_length": (lambda r: _edit(r, lambda m: m["text"].pop("max_length")), {}, "l2v.json",
                                    "'text.max_length' is missing"),
    "bad text.templates": (lambda r: _edit(r, lambda m: m["text"].update(templates=["no slot"])), {}, "l2v.json",
                           "key 'text' is invalid"),
    "wrong dim, onnx": (lambda r: _edit(r, lambda m: m["graph"].update(dim=32)), {}, "l2v.json",
                        "outputs 64 dimensions, l2v.json says dim 32"),
    "wrong dim, torch": (lambda r: _edit(r, lambda m: m["graph"].update(dim=32)), {"backend": "torch"}, "l2v.json",
                         "exported for dim 64"),
    "dim beyond hidden, torch": (lambda r: _edit(r, lambda m: m["graph"].update(dim=128)), {"backend": "torch"},
                                 "l2v.json", "graph.dim 128 exceeds model.hidden_size 64"),
    "tokenizer.json missing": (lambda r: os.remove(r / "tokenizer.json"), {}, "tokenizer.json", "lacks its file"),
    "tokenizer.json corrupt": (lambda r: _same_size_garbage(r / "tokenizer.json"), {}, "tokenizer", "damaged"),
    "tokenizer.json of another structure": (
        lambda r: (r / "tokenizer.json").write_text('{"version": "1.0"}'.ljust((r / "tokenizer.json").stat().st_size)),
        {}, "tokenizer", "damaged"),
    "tokenizer_config.json corrupt": (lambda r: _same_size_garbage(r / "tokenizer_config.json"), {}, "tokenizer",
                                      "damaged"),
    "torch/config.json corrupt": (lambda r: _same_size_garbage(r / "torch" / "config.json"), {"backend": "torch"},
                                  "torch", "not a valid JSON file"),
    "torch weights corrupt": (lambda r: _same_size_garbage(r / "torch" / "model.safetensors", b"\xff"),
                              {"backend": "torch"}, "torch", "cannot load the PyTorch weights"),
    "torch weights truncated": (lambda r: _truncate(r / "torch" / "model.safetensors"), {"backend": "torch"},
                                "torch/model.safetensors", "truncated"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_case7_damaged_artifact_is_an_artifact_error(copy, case):
    damage, kwargs, names, says = DAMAGE[case]
    damage(copy)
    with pytest.raises(ArtifactError) as e:
        l2v.load(copy, **kwargs).encode(["a text"])
    msg = str(e.value)
    assert names in msg and says in msg and "\n" not in msg, msg
    assert e.value.hint and ("re-export" in e.value.hint or "copy" in e.value.hint), msg  # the fix


def test_case7_damaged_artifact_through_the_cli(capfd, copy):
    _truncate(copy / "model.onnx")
    r = call(capfd, "quantize", copy, "--quant", "int8-dynamic", "--no-speed")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and last.startswith("error: ") and "unexpected" not in r.stderr, r.stderr
    assert "'model.onnx'" in r.stderr and "truncated" in r.stderr


def test_case1_corrupt_graph_is_refused_by_the_quantize_cli(capfd, copy):
    """4 KB inverted inside model.onnx (same size): l2v-quantize checks every sha256 first."""
    p = copy / "model.onnx"
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = bytes(255 - b for b in data[mid:mid + 4096])
    p.write_bytes(bytes(data))
    before = (copy / "l2v.json").read_bytes()
    r = call(capfd, "quantize", copy, "--quant", "int8-dynamic", "--no-speed")
    assert r.returncode == 2 and "'model.onnx'" in r.stderr and "does not match its recorded sha256" in r.stderr
    assert (copy / "l2v.json").read_bytes() == before and not (copy / "model_int8-dynamic.onnx").exists()
    with pytest.raises(ArtifactError, match="does not match its recorded sha256"):
        l2v.load(copy, verify=True)


def test_case8_symlink_out_of_the_artifact_is_refused(copy, tmp_path):
    """A manifest path cannot leave the artifact (tests/artifact pins '../' and absolute paths); neither
    can a file of the artifact that is a symbolic link to elsewhere."""
    outside = tmp_path / "elsewhere.onnx"
    os.replace(copy / "model.onnx", outside)
    os.symlink(outside, copy / "model.onnx")
    with pytest.raises(ArtifactError, match="outside the artifact"):
        l2v.load(copy)
    _edit(copy, lambda m: m["variants"]["fp32"]["files"][0].update(path="../elsewhere.onnx"))
    with pytest.raises(L2VError, match="outside the artifact"):
        l2v.load(copy)


def test_case4_variant_files_never_collide(capfd, copy):
    """`int8-dynamic` and `int8_dynamic` get their own files (names are file-safe and unique, so
    `model_<name>.onnx` is too); a name differing from another only in case is refused."""
    r = call(capfd, "quantize", copy, "--quant", "int8-dynamic", "--quant", "int8-dynamic:name=int8_dynamic",
             "--no-speed")
    assert r.returncode == 0, r.stderr
    m = json.loads((copy / "l2v.json").read_text())
    paths = {n: m["variants"][n]["files"][0]["path"] for n in ("int8-dynamic", "int8_dynamic")}
    assert paths == {"int8-dynamic": "model_int8-dynamic.onnx", "int8_dynamic": "model_int8_dynamic.onnx"}
    l2v.load(copy, variant="int8_dynamic", verify=True)
    r = call(capfd, "quantize", copy, "--quant", "int8-dynamic:name=INT8-dynamic", "--no-speed")
    assert r.returncode == 2 and "differs from the existing 'int8-dynamic' only in case" in r.stderr, r.stderr
