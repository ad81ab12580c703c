"""sentence-transformers folders: parity with the real sentence-transformers library as the oracle, on tiny
random-weight folders (tests/st_tiny.py). Default run: every stack at the PyTorch level (the module the
export traces, with the artifact's own text pre-processing), and one full export (EmbeddingGemma-like
stack: ONNX + torch backends, prompts, the tokenizer with a special token past the embedding rows).
`-m slow`: the full export of every stack, fp32 and fp16 (bench/st_parity.py also adds int8)."""
import numpy as np
import pytest

from st_tiny import PARITY_TEXTS, STACKS, save_st_folder

sentence_transformers = pytest.importorskip("sentence_transformers", reason="pip install -e '.[test]'")
MIN_COS = 0.9999


def cosines(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Row-wise cosine; a row that is zero in both (an empty pooled span) counts as 1, zero in one as 0."""
    nr, ng = np.linalg.norm(ref, axis=1), np.linalg.norm(got, axis=1)
    both_zero = (nr < 1e-12) & (ng < 1e-12)
    cos = (ref * got).sum(1) / np.maximum(nr * ng, 1e-30)
    return np.where(both_zero, 1.0, cos)


def oracle(folder):
    return sentence_transformers.SentenceTransformer(str(folder), device="cpu")


def built_encoder(folder):
    """What the export builds before tracing: the `EmbeddingModel` and the artifact's preprocessor."""
    from l2v.export.build import build_encoder
    from l2v.export.options import ExportOptions
    from l2v.model.source import probe_st, resolve_model

    opts = ExportOptions(st=probe_st(str(folder)))
    opts.check()
    return build_encoder(resolve_model(str(folder)), opts, lambda _: None)


def torch_encode(built, texts, prompt_name=None, prompt=None, batch=3):
    import torch

    pre = built.preprocessor()
    rows = pre.rows(texts, prompt, prompt_name)
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            b = pre.pad(rows[i:i + batch])
            out.append(built.encoder(**{k: torch.from_numpy(b[k]) for k in b.keys()}).numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("stack", list(STACKS))
def test_stack_matches_sentence_transformers_in_pytorch(tmp_path, stack):
    folder = save_st_folder(tmp_path / stack, **STACKS[stack])
    st, built = oracle(folder), built_encoder(folder)
    for prompt_name in [None, *st.prompts]:
        ref = st.encode(PARITY_TEXTS, prompt_name=prompt_name, batch_size=3)
        got = torch_encode(built, PARITY_TEXTS, prompt_name)
        assert got.shape == ref.shape
        assert cosines(ref, got).min() >= MIN_COS, (stack, prompt_name)
    custom = "Represent this sentence for searching: "
    assert cosines(st.encode(PARITY_TEXTS, prompt=custom), torch_encode(built, PARITY_TEXTS, prompt=custom)).min() >= MIN_COS


@pytest.mark.parametrize("mode", ["cls", "weightedmean", "max", "mean_sqrt_len_tokens"])
def test_other_pooling_modes_with_the_prompt_left_out(tmp_path, mode):
    folder = save_st_folder(tmp_path / mode, pooling=mode, include_prompt=False, normalize=False,
                            prompts={"query": "query: a long instruction prefix "}, tok_kind="eos", padding_side="left")
    st, built = oracle(folder), built_encoder(folder)
    for prompt_name in (None, "query"):
        ref = st.encode(PARITY_TEXTS, prompt_name=prompt_name, batch_size=3)
        got = torch_encode(built, PARITY_TEXTS, prompt_name)
        assert cosines(ref, got).min() >= MIN_COS, (mode, prompt_name)
        assert np.abs(ref - got).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_prompt_exclusion_counts_tokens_as_sentence_transformers_does(tmp_path):
    """include_prompt False drops the first len(tokenize(prompt)) tokens of prompt+text (a token count,
    even where the prompt's last token merges with the text's first), under left and right padding."""
    from l2v.text import Preprocessor

    folder = save_st_folder(tmp_path / "count", include_prompt=False, prompts={"query": "query: "})
    built = built_encoder(folder)
    pre: Preprocessor = built.preprocessor()
    n = pre.prompt_length("query: ")
    alone = built.tokenizer("query: ")["input_ids"]
    assert n == len(alone)  # BOS + the prompt's tokens; no trailing special token to drop here
    ids, pooled = pre.rows(["hello world"], "query: ")[0]
    assert pooled == [0] * n + [1] * (len(ids) - n)
    assert pre.rows(["hello world"], prompt_name="query") == [(ids, pooled)]
    ids, pooled = pre.rows(["hello world"], "")[0]  # an empty prompt: no prompt, every token pooled
    assert pooled == [1] * len(ids)


def test_attention_comes_from_the_config_and_the_flag_overrides_it(tmp_path):
    from l2v.model.masks import config_is_causal

    bidir = save_st_folder(tmp_path / "bi", "llama", is_causal=False)
    built = built_encoder(bidir)
    assert built.encoder.causal is False and config_is_causal(built.backbone.config) is False
    st = oracle(bidir)
    assert cosines(st.encode(PARITY_TEXTS), torch_encode(built, PARITY_TEXTS)).min() >= MIN_COS
    plain = save_st_folder(tmp_path / "plain", "llama")
    assert built_encoder(plain).encoder.causal is True  # a decoder config that says nothing runs causal

    from l2v.export.build import build_encoder
    from l2v.export.options import ExportOptions
    from l2v.model.source import probe_st, resolve_model

    opts = ExportOptions(st=probe_st(str(plain)), causal=False)
    opts.check()
    assert build_encoder(resolve_model(str(plain)), opts, lambda _: None).encoder.causal is False


@pytest.fixture(scope="module")
def gemma_artifact(st_gemma):
    return st_gemma


def test_export_of_the_gemma_stack_matches_sentence_transformers(gemma_artifact):
    import l2v

    folder, out = gemma_artifact
    st = oracle(folder)
    for backend in ("onnx", "torch"):
        enc = l2v.load(out, backend=backend)
        for prompt_name in (None, "query", "document"):
            ref = st.encode(PARITY_TEXTS, prompt_name=prompt_name)
            assert cosines(ref, enc.encode(PARITY_TEXTS, prompt_name=prompt_name)).min() >= MIN_COS
        got = enc.encode(PARITY_TEXTS, prompt="task: clustering | query: ")
        assert cosines(st.encode(PARITY_TEXTS, prompt="task: clustering | query: "), got).min() >= MIN_COS


def test_quantized_variant_of_an_st_artifact(gemma_artifact):
    """Calibration, the layer ranking and the recall gate run on an artifact with a Dense head (kept fp32)."""
    import l2v

    folder, out = gemma_artifact
    enc = l2v.load(out, variant="int8-smooth")
    gate = enc.manifest.variants["int8-smooth"].gate
    assert gate["recall@10"] >= 0.5 and gate["min_cosine"] > 0.9
    ref = oracle(folder).encode(PARITY_TEXTS, prompt_name="query")
    assert cosines(ref, enc.encode(PARITY_TEXTS, prompt_name="query")).min() >= 0.99


def test_the_manifest_records_the_folder(gemma_artifact):
    from l2v.artifact import open_artifact

    _, out = gemma_artifact
    m = open_artifact(out).manifest
    st = m.sentence_transformers
    assert st.prompts["query"] == "task: search result | query: " and st.default_prompt_name is None
    assert (st.similarity_fn_name, st.pooling_mode, st.include_prompt) == ("cosine", "mean", True)
    assert [x["activation"] for x in m.graph.head] == ["Identity", "Identity"] and m.graph.normalize
    assert (m.preset, m.graph.attention, m.graph.pooling, m.graph.dim) == ("sentence-transformers", "bidirectional",
                                                                           "mean", 64)
    assert m.tokenizer.embedding_rows == 400 and m.text["mode"] == "st"
    assert "prompts" not in m.to_json()["text"]  # one place for prompts: sentence_transformers
    assert any(f.path == "torch/head.safetensors" for f in m.variants["torch"].files)


def test_special_token_past_the_rows_is_accepted_until_text_spells_it(gemma_artifact):
    import l2v
    from l2v.errors import InputError
    from l2v.text.batch import Batch

    _, out = gemma_artifact
    enc = l2v.load(out)
    assert len(enc.preprocessor.tokenizer) == 401  # one added special token, 400 embedding rows
    with pytest.raises(InputError, match=r"token id 400 \('<image_soft_token>'\), beyond the model's 400"):
        enc.encode(["an <image_soft_token> inside a text"])
    ids = np.array([[1, 5, 400]])
    with pytest.raises(InputError, match="token id 400 is beyond"):
        enc.run(Batch(ids, np.ones_like(ids), np.ones_like(ids)))


def test_prompt_arguments_follow_sentence_transformers(gemma_artifact):
    import warnings

    import l2v
    from l2v.errors import InputError

    _, out = gemma_artifact
    enc = l2v.load(out)
    assert set(enc.prompts) >= {"query", "document", "Clustering"} and enc.similarity_fn_name == "cosine"
    with pytest.raises(InputError, match="'nope' is not one of this artifact's prompts"):
        enc.encode(["x"], prompt_name="nope")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        both = enc.encode(["x"], prompt_name="query", prompt="title: none | text: ")
    assert any("prompt_name is ignored" in str(w.message) for w in caught)
    np.testing.assert_allclose(both, enc.encode(["x"], prompt_name="document"), atol=1e-6)
    with pytest.raises(InputError, match="plain texts"):
        enc.encode([("an instruction", "a text")])


@pytest.mark.slow
@pytest.mark.parametrize("stack", list(STACKS))
def test_every_stack_exported_fp32_fp16(tmp_path, stack):
    import l2v

    folder = save_st_folder(tmp_path / "st", **STACKS[stack])
    out = l2v.export_model(str(folder), tmp_path / "art", dtype="fp16", progress=False)
    st = oracle(folder)
    for variant, bound in (("fp32", MIN_COS), ("fp16", 0.999)):
        enc = l2v.load(out, variant=variant)
        for prompt_name in [None, *st.prompts]:
            ref = st.encode(PARITY_TEXTS, prompt_name=prompt_name)
            assert cosines(ref, enc.encode(PARITY_TEXTS, prompt_name=prompt_name)).min() >= bound, (variant, prompt_name)
