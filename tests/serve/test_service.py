"""EmbeddingService (what the server runs) gives `encode`'s vectors, whatever the grouping of rows."""
import copy

import numpy as np
import pytest

from l2v.errors import InputError
from l2v.serve.service import EmbeddingService, ServeConfig, is_matryoshka

TEXTS = ["hello world", "Padding tokens must never change the embedding of a real token.", "x",
         "The quick brown fox jumps over the lazy dog. " * 5, "naïve café — 東京"]


@pytest.fixture(scope="module")
def svc(tiny_llama_artifact):
    return EmbeddingService(ServeConfig(str(tiny_llama_artifact), max_batch_tokens=40))  # several sub-batches


def test_items_from_any_grouping_equal_encode(svc):
    ref = svc.encoder.encode(TEXTS)
    items = svc.tokenize(TEXTS)
    assert [it.n_tokens for it in items] == [len(r[0]) for r in svc.encoder.rows(TEXTS)]
    np.testing.assert_allclose(svc.embed(items[::-1])[::-1], ref, atol=1e-5)  # other requests' order
    np.testing.assert_allclose(np.concatenate([svc.embed(items[:2]), svc.embed(items[2:])]), ref, atol=1e-5)
    np.testing.assert_array_equal(svc.encode(TEXTS), svc.finish(svc.embed(items)))


def test_instruction_field_becomes_pairs(svc):
    assert svc.items(["a", "b"], None) == ["a", "b"]
    assert svc.items(["a", "b"], "Q") == [("Q", "a"), ("Q", "b")]
    assert svc.items(["a", "b"], ["Q", None]) == [("Q", "a"), "b"]
    ref = svc.encoder.encode([("Retrieve passages", TEXTS[0]), TEXTS[1]])
    np.testing.assert_allclose(svc.encode(TEXTS[:2], ["Retrieve passages", None]), ref, atol=1e-5)


def test_normalize_and_dimensions(tiny_llama_artifact):
    raw = EmbeddingService(ServeConfig(str(tiny_llama_artifact))).encode(TEXTS[:2])
    svc = EmbeddingService(ServeConfig(str(tiny_llama_artifact), normalize=True, matryoshka=True))
    v = svc.encode(TEXTS[:2], dimensions=16)
    ref = raw[:, :16] / np.linalg.norm(raw[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(v, ref, atol=1e-5)
    full = svc.encode(TEXTS[:2])
    np.testing.assert_allclose(full, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    assert svc.info()["l2v"]["normalized"] and svc.info()["l2v"]["dim"] == 64


def test_matryoshka_is_what_the_exporter_declared(svc):
    m = copy.deepcopy(svc.encoder.manifest)
    assert not is_matryoshka(m) and not svc.matryoshka
    m.graph.dim = 16  # exported with --dim 16 < hidden_size 64
    assert is_matryoshka(m)


def test_bad_item_and_bad_config(svc, tiny_llama_artifact):
    with pytest.raises(InputError, match="text 1 is a int"):
        svc.tokenize(["ok", 3])
    with pytest.raises(InputError, match="--max-batch-size 0"):
        ServeConfig(str(tiny_llama_artifact), max_batch_size=0).check()


def test_a_batch_is_cut_by_length_under_the_token_budget(svc, monkeypatch):
    """What `@serve.batch` hands over (texts of several requests) runs as length-sorted forward passes of at
    most `max_batch_tokens` (40 here) padded tokens, so one long text does not pad the short ones."""
    texts = ["x", "The quick brown fox jumps over the lazy dog. " * 3, "hello world", "a b c d e f", "y z"]
    items = svc.tokenize(texts)
    passes, run = [], svc.encoder.run

    def recording_run(batch):
        passes.append(np.asarray(batch.attention_mask).sum(1).tolist())  # real tokens per row of this pass
        return run(batch)

    monkeypatch.setattr(svc.encoder, "run", recording_run)
    got = svc.embed(items)
    lengths = [n for p in passes for n in p]
    assert sorted(lengths) == sorted(it.n_tokens for it in items) and len(passes) > 1
    assert all(max(p) * len(p) <= 40 or len(p) == 1 for p in passes), passes
    assert min(passes[0]) >= max(passes[-1])  # longest first; short rows together, the long one apart
    np.testing.assert_allclose(got, svc.encoder.encode(texts), atol=1e-5)
