"""Runtime input handling: empty list, empty string, over-long text, non-UTF-8, threads."""
import threading

import numpy as np
import pytest

import l2v
from l2v.errors import ArtifactError, InputError
from tiny import save_model_dir


@pytest.fixture(scope="module")
def enc(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt")
    base = save_model_dir(root / "base", "qwen2")
    out = l2v.export_model(str(base), root / "art", max_length=16, progress=False)
    return l2v.load(out)


def test_empty_list(enc):
    with pytest.raises(InputError, match="text list is empty"):
        enc.encode([])


def test_empty_string_is_a_defined_vector(enc):
    e = enc.encode(["", "text"])
    assert np.isfinite(e).all() and np.linalg.norm(e[0]) > 0


def test_long_text_is_truncated_to_max_length(enc):
    assert enc.manifest.max_length == 16
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho".split()
    long_text = " ".join(words * 4)
    rows = enc.preprocessor.rows([long_text])
    assert len(rows[0][0]) == 16
    # the vector of the long text equals that of any text sharing its first 16 tokens
    longer = long_text + " sigma tau upsilon phi chi psi omega"
    assert np.abs(enc.encode([long_text]) - enc.encode([longer])).max() <= 1e-5


def test_non_utf8_bytes(enc):
    with pytest.raises(InputError, match=r"text 1 is not valid UTF-8 \(byte 0xff"):
        enc.encode(["ok", b"bad \xff bytes"])
    assert enc.encode([b"caf\xc3\xa9"]).shape == (1, enc.dim)  # valid UTF-8 bytes are fine


def test_surrogates_rejected(enc):
    with pytest.raises(InputError, match="not valid UTF-8"):
        enc.encode(["bad \udcff"])


def test_non_string(enc):
    with pytest.raises(InputError, match="text 0 is a int"):
        enc.encode([3])


def test_bad_batch_size(enc):
    with pytest.raises(InputError, match="batch_size 0"):
        enc.encode(["x"], batch_size=0)


def test_thread_safe_concurrent_callers(enc):
    texts = [f"sentence number {i} with some words" for i in range(24)]
    expected = enc.encode(texts, batch_size=5)
    results, errors = {}, []

    def worker(k):
        try:
            results[k] = enc.encode(texts[k:] + texts[:k], batch_size=3 + k % 4)
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, got in results.items():
        assert np.abs(got - np.roll(expected, -k, axis=0)).max() <= 1e-5


def test_load_errors(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        l2v.load(tmp_path / "missing")
    with pytest.raises(ArtifactError, match="not an l2v artifact"):
        l2v.load(tmp_path)


def test_bad_backend_and_variant(enc):
    with pytest.raises(InputError, match="backend 'tensorflow'"):
        l2v.load(enc.root, backend="tensorflow")
    with pytest.raises(InputError, match="variant 'int3'"):
        l2v.load(enc.root, variant="int3")


def test_packed_engine_backend_matches_padded(enc):
    """`l2v.load(dir, backend="torch", engine="packed")`: the padding-free engine (CPU reference
    attention here; Triton on CUDA) gives the vectors of the exported module."""
    texts = ["a short one", "a somewhat longer sentence with more words in it", "", "mid sized text"]
    packed = l2v.load(enc.root, backend="torch", engine="packed")
    padded = l2v.load(enc.root, backend="torch")
    assert np.abs(packed.encode(texts, batch_size=3) - padded.encode(texts)).max() <= 1e-4
    with pytest.raises(InputError, match="engine 'paged'"):
        l2v.load(enc.root, backend="torch", engine="paged")


def test_torch_only_variant_needs_torch_backend(enc, tmp_path):
    """A bitsandbytes variant (kind bnb) runs on the torch backend: asking ONNX Runtime for it says what to do."""
    import json
    import shutil

    art = tmp_path / "art"
    shutil.copytree(enc.root, art)
    manifest = json.loads((art / "l2v.json").read_text())
    manifest["variants"]["bnb-int8"] = {"kind": "bnb", "dtype": "int8", "base": "torch",
                                        "quant": {"method": "bnb-int8", "version": 1, "name": None, "threshold": 6.0}}
    (art / "l2v.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="load it with backend='torch'"):
        l2v.load(art, backend="onnx", variant="bnb-int8")
