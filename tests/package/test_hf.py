"""The HF / sentence-transformers package round-trips through the real sentence-transformers library,
and its pooling modules pool exactly as l2v's graph does."""
import json
import re
import shutil

import numpy as np
import pytest

from l2v.errors import InputError, UnsupportedArchitectureError
from l2v.package.hf import FLAGS, ST_POOLING, bidirectional_config, write_hf_package

st = pytest.importorskip("sentence_transformers")

TEXTS = ["hello world", "Padding tokens must never change the embedding of a real token.", "x",
         "The quick brown fox jumps over the lazy dog. " * 6, "naïve café — 東京"]


def min_cos(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


@pytest.fixture(scope="module")
def package(tiny_llama_artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "pkg"
    return write_hf_package(tiny_llama_artifact, out, prompts={"query": "Retrieve passages"})


def test_round_trip_through_sentence_transformers(package, tiny_llama_artifact):
    import l2v

    model = st.SentenceTransformer(str(package), trust_remote_code=True, device="cpu")
    enc = l2v.load(tiny_llama_artifact)
    got, ref = model.encode(TEXTS, batch_size=2), enc.encode(TEXTS)
    assert min_cos(got, ref) >= 0.9999
    np.testing.assert_allclose(got, ref, atol=1e-4)
    ref_q = enc.encode([("Retrieve passages", t) for t in TEXTS[:3]])
    assert min_cos(model.encode(TEXTS[:3], prompt_name="query", batch_size=2), ref_q) >= 0.9999
    assert min_cos(model.encode([("Retrieve passages", t) for t in TEXTS[:3]]), ref_q) >= 0.9999


def test_files_engines_read(package):
    cfg = json.loads((package / "config.json").read_text())
    assert cfg["is_causal"] is False and cfg["use_bidirectional_attention"] is True  # llama: vLLM and TEI
    modules = json.loads((package / "modules.json").read_text())
    assert [m["type"] for m in modules] == ["l2v_st.L2VTransformer", "sentence_transformers.models.Pooling"]
    pool = json.loads((package / "1_Pooling" / "config.json").read_text())
    assert pool["pooling_mode_mean_tokens"] is True and pool["word_embedding_dimension"] == 64
    assert json.loads((package / "config_sentence_transformers.json").read_text())["prompts"] == {
        "query": "Retrieve passages"}
    tok = json.loads((package / "tokenizer_config.json").read_text())
    assert tok["pad_token"] == "</s>" and tok["model_max_length"] == 64
    vendored = "".join(p.read_text() for p in package.glob("l2v_*.py"))
    assert not re.search(r"^\s*(from|import)\s+l2v\b", vendored, re.M)


def test_truncate_and_normalize_modules(tiny_llama_artifact, tmp_path):
    """An artifact declared --dim 16 --normalize: L2VTruncate then ST's Normalize, as the graph does."""
    import l2v
    from l2v.artifact import read_manifest

    art = tmp_path / "art"
    shutil.copytree(tiny_llama_artifact, art)
    m = read_manifest(art)
    m.graph.dim, m.graph.normalize = 16, True
    (art / "l2v.json").write_text(json.dumps(m.to_json()))
    pkg = write_hf_package(art, tmp_path / "pkg")
    types = [x["type"] for x in json.loads((pkg / "modules.json").read_text())]
    assert types[2:] == ["l2v_st.L2VTruncate", "sentence_transformers.models.Normalize"]
    model = st.SentenceTransformer(str(pkg), trust_remote_code=True, device="cpu")
    raw = l2v.load(tiny_llama_artifact).encode(TEXTS)[:, :16]
    got = model.encode(TEXTS, batch_size=2)
    assert got.shape == (5, 16)
    np.testing.assert_allclose(got, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("mode", sorted(ST_POOLING))
def test_pooling_modules_equal_l2v_pooling(mode, package):
    """Per l2v pooling: the module the package uses (ST's Pooling, or l2v_st.L2VPooling) on the mask the
    input module hands it equals l2v's pooling (right padding; BOS and an instruction not pooled)."""
    import importlib
    import sys

    import torch

    from l2v.model.pooling import pool

    torch.manual_seed(0)
    hidden = torch.randn(3, 9, 8)
    am = torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] * 3 + [0] * 6])
    pm = am.clone()
    pm[:, 0] = 0  # BOS
    pm[0, 1:4] = 0  # an instruction
    ref = pool(hidden, am, pm, mode)
    feats = {"token_embeddings": hidden, "token_attention_mask": am, "pooling_mask": pm}
    if ST_POOLING[mode] is None:
        sys.path.insert(0, str(package.parent))
        try:
            module = importlib.import_module(f"{package.name}.l2v_st").L2VPooling(8, mode)
        finally:
            sys.path.remove(str(package.parent))
    else:
        st_mode, over = ST_POOLING[mode]
        module = st.models.Pooling(8, pooling_mode=st_mode)
        feats["attention_mask"] = pm if over == "pooling_mask" else am
    torch.testing.assert_close(module(feats)["sentence_embedding"], ref)


def test_flags_and_refusals(tiny_llama_artifact, tmp_path):
    cfg = bidirectional_config({"model_type": "gemma2", "sliding_window": 4096}, causal=False)
    assert cfg["is_causal"] is False and cfg["sliding_window"] == 4095
    cfg = bidirectional_config({"model_type": "gemma3_text", "sliding_window": 512,
                                "layer_types": ["sliding_attention"] * 5 + ["full_attention"]}, causal=False)
    assert "is_causal" not in cfg and cfg["sliding_window"] == 1022 and cfg["_sliding_window_pattern"] == 6
    assert bidirectional_config({"model_type": "phi3"}, causal=True) == {"model_type": "phi3"}
    with pytest.raises(UnsupportedArchitectureError, match="'phi3'"):
        bidirectional_config({"model_type": "phi3"}, causal=False)
    assert set(FLAGS) == {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text"}
    with pytest.raises(InputError, match="--default-prompt 'doc'"):
        write_hf_package(tiny_llama_artifact, tmp_path / "p", prompts={"query": "Q"}, default_prompt_name="doc")
    assert not (tmp_path / "p").exists()
