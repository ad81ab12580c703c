"""Cases 5, 6 and 10: options checked before any work, bounded lengths and memory, and the small gaps —
each a typed error naming the value (more fail-fast cases: tests/export/test_fail_fast.py)."""
import json
import time

import numpy as np
import pytest

import l2v
from rel_helpers import CONTEXT, call
from l2v.cli.export import main as export_main
from l2v.errors import ArtifactError, InputError
from l2v.runtime.budget import activation_bytes


@pytest.fixture(scope="module")
def enc(art):
    return l2v.load(art)


# ---------------------------------------------------------------------- case 5: fail fast, as the issue lists
@pytest.mark.parametrize("extra,pattern", [
    (["--quant", "int8-smoth"], "unknown quantization method 'int8-smoth'"),
    (["--quant", "w4", "--min-recall", "1.5"], "--min-recall 1.5 must be a number in (0, 1]"),
    (["--adapter", "ADAPTER"], "has no adapter_config.json"),
    (["--out", "UNDER_FILE"], "which is a file"),
])
def test_case5_options_fail_before_the_model_loads(capsys, tmp_path, model_dir, extra, pattern):
    (tmp_path / "adapter").mkdir()  # an adapter directory without its config: found before loading
    (tmp_path / "f").write_text("x")
    extra = [str(tmp_path / "adapter") if a == "ADAPTER" else str(tmp_path / "f" / "o") if a == "UNDER_FILE" else a
             for a in extra]
    args = [str(model_dir), "--out", str(tmp_path / "out"), *extra]
    t0 = time.perf_counter()
    code = export_main(args)
    err = capsys.readouterr().err
    assert code == 2 and pattern in err and "loading the model" not in err, err
    assert time.perf_counter() - t0 < 10  # in-process: the check itself, not a model load (~seconds)


# ---------------------------------------------------------------------- case 6: bounded lengths and memory
def test_case6_max_length_is_capped_at_the_context(capsys, tmp_path, model_dir):
    code = export_main([str(model_dir), "--out", str(tmp_path / "o"), "--max-length", "1000000000", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"--max-length 1000000000 exceeds the model's context of {CONTEXT} positions" in err


def _recording(enc):
    """Record the shape of every batch the backend runs (a wrapper on this encoder's own backend)."""
    shapes, inner = [], enc.backend

    class Recorder:
        name = inner.name

        def run(self, batch):
            shapes.append(batch.input_ids.shape)
            return inner.run(batch)

    enc.backend = Recorder()
    return shapes


def test_case6_a_1mb_string_never_asks_for_terabytes(art):
    """--doc-max-length 0 and a max_length of 131,072 tokens: a 1 MB string becomes one 131,072-token row,
    whose attention alone would need ~0.8 TB. It is refused before anything runs; truncated shorter at
    load, it embeds."""
    enc = l2v.load(art)
    assert enc.manifest.max_length == CONTEXT and not enc.preprocessor.spec.doc_max_length
    shapes = _recording(enc)
    huge = ("The quick brown fox jumps over the lazy dog. " * 23000)[:1_000_000]
    with pytest.raises(InputError, match=rf"text 1 is {CONTEXT} tokens long: one pass over it needs ~\d+\.\d [GT]B"
                                         r" of activations, more than the budget"):
        enc.encode(["short", huge])
    assert shapes == []  # refused before any backend call
    need = activation_bytes(enc.manifest.model, 1, CONTEXT)
    assert need > 5e11
    short = l2v.load(art, max_length=512)
    assert short.encode([huge]).shape == (1, 64)


def test_case6_batches_split_under_the_budget_with_the_same_vectors(enc):
    texts = [" ".join(["word"] * n) for n in (300, 250, 200, 40, 30, 20, 10, 5)]
    want = enc.encode(texts, batch_size=8)
    shapes = _recording(enc)
    model = enc.manifest.model
    longest = max(len(ids) for ids, _ in enc.preprocessor.rows(texts))
    budget = activation_bytes(model, 2, longest)  # room for two of the longest rows
    got = enc.encode(texts, batch_size=8, max_batch_bytes=budget)
    assert np.abs(got - want).max() <= 1e-5
    assert len(shapes) > 1 and all(activation_bytes(model, b, s) <= budget for b, s in shapes), shapes
    with pytest.raises(InputError, match="max_batch_bytes 0 must be a positive number"):
        enc.encode(texts, max_batch_bytes=0)


def test_case6_budget_from_the_environment(enc, monkeypatch):
    monkeypatch.setenv("L2V_MAX_BATCH_BYTES", "1K")
    with pytest.raises(InputError, match="more than the budget of 1.0 KB"):
        enc.encode(["a text long enough"])
    monkeypatch.setenv("L2V_MAX_BATCH_BYTES", "lots")
    with pytest.raises(InputError, match="L2V_MAX_BATCH_BYTES='lots' is not a size"):
        enc.encode(["a"])


# ---------------------------------------------------------------------- case 10: the smaller gaps
@pytest.mark.parametrize("texts,pattern", [
    (None, "got NoneType None"), (42, "got int 42"), ({"a": "b"}, "got a dict"), ({"a", "b"}, "got a set"),
    (3.5, "got float 3.5"), ([b"\xff"], "not valid UTF-8"), ([None], "text 0 is a NoneType"),
])
def test_case10_encode_refuses_what_is_not_a_list_of_texts(enc, texts, pattern):
    with pytest.raises(InputError, match=pattern):
        enc.encode(texts)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"normalize": "no"}, "normalize 'no' must be True, False or None"),
    ({"batch_size": True}, "batch_size True must be a positive integer"),
    ({"batch_size": 2.5}, "batch_size 2.5 must be a positive integer"),
])
def test_case10_encode_refuses_bad_keywords(enc, kwargs, pattern):
    with pytest.raises(InputError, match=pattern):
        enc.encode(["a"], **kwargs)


def test_case10_export_options(tmp_path, model_dir):
    with pytest.raises(InputError, match=r"adapters must be a list of directory paths, got 'dir'"):
        l2v.export_model(str(model_dir), tmp_path / "o", adapters="dir", progress=False)
    with pytest.raises(InputError, match="--min-recall 0.9 without --quant"):
        l2v.export_model(str(model_dir), tmp_path / "o", min_recall=0.9, progress=False)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="is given twice"):
        l2v.export_model(str(model_dir), tmp_path / "o", adapters=[str(adapter), str(adapter) + "/"], progress=False)
    assert not (tmp_path / "o").exists()


def test_case10_opset_and_non_text_files_through_the_cli(capfd, tmp_path, model_dir):
    bad = tmp_path / "random.bin"
    bad.write_bytes(bytes(range(256)) * 64)
    r = call(capfd, "export", model_dir, "--out", tmp_path / "o", "--opset", 99)
    assert r.returncode == 2 and "--opset 99 is not supported (use 18.." in r.stderr and "Traceback" not in r.stderr
    for flag in ("--calib", "--eval"):
        r = call(capfd, "export", model_dir, "--out", tmp_path / "o", "--quant", "int8-smooth", flag, bad)
        assert r.returncode == 2 and "is not text" in r.stderr and "random.bin" in r.stderr, r.stderr


def test_case10_corrupt_config_json_is_a_config_problem(capfd, tmp_path, model_dir):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    (d / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
    r = call(capfd, "export", d, "--out", tmp_path / "o")
    assert r.returncode == 2 and "cannot read the config of MODEL" in r.stderr and "tokenizer" not in r.stderr
    assert "config.json" in r.stderr


def test_case10_manifest_adapters_as_a_string_is_refused(copy):
    m = json.loads((copy / "l2v.json").read_text())
    m["adapters"] = "dir"
    (copy / "l2v.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="key 'adapters' must be a list"):
        l2v.load(copy)
