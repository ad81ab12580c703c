"""Export end to end on a tiny model with two adapters: validation, manifest, atomic writes."""
import json

import numpy as np
import pytest

import l2v
from helpers_adapters import llm2vec_adapters
from l2v.errors import ArtifactError, ValidationError
from l2v.artifact import read_manifest
from tiny import save_model_dir


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    base = save_model_dir(root / "base", "llama")
    mntp, simcse = llm2vec_adapters(base, root)
    out = l2v.export_model(str(base), root / "art", adapters=[str(mntp), str(simcse)], dtype="fp32,fp16",
                           progress=False)
    return root, base, mntp, simcse, out


def test_manifest_records_what_a_user_needs(setup):
    root, base, mntp, simcse, out = setup
    m = read_manifest(out)
    assert m.model.architecture == "llama" and m.graph.attention == "bidirectional" and m.graph.pooling == "mean"
    assert [a.sha256 for a in m.adapters] and len(m.adapters) == 2
    assert m.tokenizer.pad_token == "</s>" and m.tokenizer.pad_token_source == "eos"
    assert m.graph.output == "sentence_embedding" and m.graph.opset >= 18
    assert set(m.variants) == {"fp32", "fp16", "torch"}
    # small models keep the in-memory path: one inline fp32 graph (no external data), torch/ copy as before
    assert m.timings["resource_plan"]["path"] == "memory" and m.default_variant == "fp32"
    assert [f.path for f in m.variants["fp32"].files] == ["model.onnx"]
    assert {n: v.kind for n, v in m.variants.items()} == {"fp32": "onnx", "fp16": "onnx", "torch": "torch"}
    v32, v16 = m.variants["fp32"].validation, m.variants["fp16"].validation
    assert v32["min_cosine"] >= 0.99999 and v16["min_cosine"] >= 0.999
    assert v32["alone_vs_batched_max_abs_diff"] <= 1e-5
    assert all(m.versions[k] for k in ("torch", "transformers", "onnx", "onnxruntime", "l2v-export"))
    assert isinstance(m.source["sha256"], dict) and m.source["sha256"]
    # every file of every variant, and every shared file, is recorded with its size and sha256
    recorded = {r.path for v in m.variants.values() for r in v.files} | {r.path for r in m.files}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"l2v.json"}
    assert recorded == on_disk
    assert all(r.size and len(r.sha256) == 64 for v in m.variants.values() for r in v.files)
    assert {"tokenizer.json", "tokenizer_config.json"} <= {r.path for r in m.files}


def test_onnx_graph_has_dynamic_axes_and_named_io(setup):
    import onnx

    out = setup[-1]
    g = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    assert [i.name for i in g.input] == ["input_ids", "attention_mask", "pooling_mask"]
    assert [o.name for o in g.output] == ["sentence_embedding"]
    for i in g.input:
        dims = i.type.tensor_type.shape.dim
        assert all(d.dim_param and not d.dim_value for d in dims)


def test_backends_agree_and_order_is_restored(setup):
    out = setup[-1]
    texts = ["short", "a much longer text about embeddings and vectors and padding", "mid length text here", ""]
    onnx_enc = l2v.load(out, variant="fp32")
    torch_enc = l2v.load(out, backend="torch")
    a, b = onnx_enc.encode(texts, batch_size=2), torch_enc.encode(texts, batch_size=3)
    assert a.dtype == np.float32 and a.shape == (4, 64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99999
    for i, t in enumerate(texts):  # order restored, and alone == in batch
        assert np.abs(onnx_enc.encode([t])[0] - a[i]).max() <= 1e-5


def test_merged_adapters_are_in_the_graph(setup):
    """The exported vectors are those of base+MNTP+SimCSE merged, not of the base alone."""
    root, base, *_ , out = setup
    plain = l2v.export_model(str(base), root / "plain", progress=False, torch_weights=False)
    t = ["adapters change the vectors"]
    a, b = l2v.load(out).encode(t), l2v.load(plain).encode(t)
    assert np.abs(a - b).max() > 1e-3


def test_failed_validation_leaves_nothing(setup, monkeypatch, tmp_path):
    from l2v.export import validate

    base = setup[1]
    monkeypatch.setitem(validate.MIN_COSINE, "fp32", 1.5)  # impossible: forces the typed failure
    with pytest.raises(ValidationError, match="disagrees with PyTorch"):
        l2v.export_model(str(base), tmp_path / "art", progress=False)
    assert list(tmp_path.iterdir()) == []  # no artifact, no temp dir


def test_out_dir_rules(setup, tmp_path):
    base, out = setup[1], setup[-1]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ArtifactError, match="not an l2v artifact"):
            l2v.export_model(str(base), foreign, progress=False, overwrite=overwrite)
    assert (foreign / "precious.txt").read_text() == "keep me"
    with pytest.raises(ArtifactError, match="--overwrite"):
        l2v.export_model(str(base), out, progress=False)
    before = json.loads((out / "l2v.json").read_text())["created"]
    assert before


def test_pooling_normalize_and_matryoshka(setup, tmp_path):
    base = setup[1]
    out = l2v.export_model(str(base), tmp_path / "m", pooling="last_token", normalize=True, dim=16,
                     progress=False, torch_weights=False)
    enc = l2v.load(out)
    e = enc.encode(["one text", "another, longer text"])
    assert e.shape == (2, 16)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    with pytest.raises(l2v.errors.InputError, match="normalises inside its graph"):
        enc.encode(["x"], normalize=False)
