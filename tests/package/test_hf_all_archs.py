"""Slow: the HF package of every architecture and pooling round-trips through sentence-transformers, and
the config.json flags alone (transformers' own bidirectional path, no explicit mask) give l2v's vectors."""
import json

import numpy as np
import pytest

from l2v.package.hf import FLAGS, write_hf_package
from tiny import ARCHS, save_model_dir

st = pytest.importorskip("sentence_transformers")
pytestmark = pytest.mark.slow

TEXTS = ["hello world", "Padding tokens must never change the embedding of a real token.", "x",
         "The quick brown fox jumps over the lazy dog. " * 6, "naïve café — 東京"]
CASES = [(a, {}) for a in ARCHS] + [
    ("llama", {"pooling": "weighted_mean"}), ("llama", {"pooling": "last_token"}), ("qwen2", {"pooling": "bos_token"}),
    ("qwen2", {"preset": "e5"}), ("mistral", {"normalize": True, "dim": 16})]


def min_cos(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


@pytest.mark.parametrize("arch,kw", CASES, ids=[f"{a}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}"
                                               for a, kw in CASES])
def test_round_trip(arch, kw, tmp_path):
    import l2v

    art = l2v.export_model(str(save_model_dir(tmp_path / "base", arch)), tmp_path / "art", max_length=64,
                           progress=False, **kw)
    pkg = write_hf_package(art, tmp_path / "pkg", prompts={"query": "Retrieve passages"})
    enc = l2v.load(art)
    model = st.SentenceTransformer(str(pkg), trust_remote_code=True, device="cpu")
    ref, ref_q = enc.encode(TEXTS), enc.encode([("Retrieve passages", t) for t in TEXTS[:3]])
    assert min_cos(model.encode(TEXTS, batch_size=2), ref) >= 0.9999
    if "{instruction}" in enc.preprocessor.spec.templates[0]:
        assert min_cos(model.encode(TEXTS[:3], prompt_name="query", batch_size=2), ref_q) >= 0.9999
    cfg = json.loads((pkg / "config.json").read_text())
    if enc.manifest.graph.attention == "bidirectional":
        for k, v in FLAGS[cfg["model_type"]].items():
            assert callable(v) or cfg[k] == v
        model[0].mask_mode = "config"  # no explicit mask: what TEI / vLLM / transformers do with config.json
        assert min_cos(model.encode(TEXTS, batch_size=2), ref) >= 0.9999
