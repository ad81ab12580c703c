"""End to end through the CLI: `l2v-export --preset ...` -> ONNX artifact -> `l2v.load(dir).encode`.
Marked slow (an ONNX export of the tiny model takes ~30 s on a shared CPU); run with `-m slow`."""
import numpy as np
import pytest

import l2v
from l2v.cli.export import main
from l2v.artifact import read_manifest
from l2v.model.encoder import EmbeddingModel
from l2v.text import Preprocessor
from text_helpers import embed
from tiny import make_backbone, save_model_dir

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("argv,preset,pooling,causal", [
    (["--preset", "metaeol"], "metaeol", "last_token", True),
    (["--template", "Topic of {instruction}: {text}", "--pooling", "weighted_mean"], "llm2vec", "weighted_mean", False),
])
def test_cli_preset_export_embeds_like_torch(tmp_path, argv, preset, pooling, causal):
    base = save_model_dir(tmp_path / "base", "llama")
    out = tmp_path / "art"
    assert main([str(base), "--out", str(out), "--quiet", *argv]) == 0
    m = read_manifest(out)
    assert (m.preset, m.graph.pooling, m.graph.attention) == (preset, pooling, "causal" if causal else "bidirectional")
    spec = m.text_spec()
    assert spec.views == (8 if preset == "metaeol" else 1)
    enc = l2v.load(out)
    items = ["The quick brown fox.", "Embedding models map text to vectors; similar texts get nearby vectors."]
    if preset == "llm2vec":
        items.append(("news", "Padding tokens must never change the embedding."))
    got = enc.encode(items, batch_size=2)
    backbone = make_backbone("llama", "sdpa", 0)
    expected = embed(Preprocessor(enc.preprocessor.tokenizer, spec), EmbeddingModel(backbone, pooling, causal=causal),
                     items)
    assert np.abs(got - expected).max() < 1e-4
