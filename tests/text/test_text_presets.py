"""Presets: what each sets, overrides, template validation, parity with E5 / PromptEOL / MetaEOL code,
and the runtime path (`l2v.load(dir).encode`) with strings, pairs and MetaEOL's several prompts."""
import json

import numpy as np
import pytest

import l2v
from l2v.errors import InputError
from l2v.model.encoder import EmbeddingModel
from l2v.text import Preprocessor, TextSpec
from l2v.text.presets import (METAEOL, PRESETS, build_text_spec, detect_chat_template, reference_eos_text,
                              resolve_export)
from llm2vec_reference import e5_reference, eol_reference
from text_helpers import embed

SENTS = ['A man is playing a guitar', 'Is "this" a question?', "Le café est très bon.", "北京欢迎你"]


@pytest.mark.parametrize("name,causal,pooling", [("llm2vec", False, "mean"), ("e5", True, "eos_token"),
                                                 ("prompteol", True, "last_token"), ("pcot", True, "last_token"),
                                                 ("ke", True, "last_token"), ("metaeol", True, "last_token")])
def test_preset_sets_attention_pooling_and_template(name, causal, pooling):
    assert resolve_export(name, None, None, None) == (name, pooling, causal)
    spec = build_text_spec(name, pooling, 512)
    assert spec.preset == name and spec.append_eos == (pooling == "eos_token")
    assert spec.views == (8 if name == "metaeol" else 1)
    assert spec.doc_max_length == (400 if name == "llm2vec" else None)
    assert TextSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # survives the manifest


def test_default_preset_is_llm2vec_and_overrides_win():
    assert resolve_export(None, None, None, None) == ("llm2vec", "mean", False)
    assert resolve_export("metaeol", "mean", False, None) == ("metaeol", "mean", False)
    assert resolve_export("llm2vec", "eos_token", True, "{text}!") == ("llm2vec", "eos_token", True)
    spec = build_text_spec("prompteol", "last_token", 512, template='Q: "{text}" in one word:"')
    assert spec.templates == ['Q: "{text}" in one word:"'] and spec.text_normalize == "eol"
    assert build_text_spec("llm2vec", "mean", 512, doc_max_length=0).doc_max_length is None


@pytest.mark.parametrize("template,words", [("no placeholder", "exactly once"), ("{text} {text}", "exactly once"),
                                            ("{text} {instruction}", "before {text}"),
                                            ("{sentence} means", "unknown placeholder")])
def test_bad_template_is_a_clear_error(template, words):
    with pytest.raises(InputError, match="--template") as e:
        resolve_export("prompteol", None, None, template)
    assert template in str(e.value) and words in str(e.value)


def test_bad_flags_are_clear_errors():
    with pytest.raises(InputError, match="unknown preset 'sbert'"):
        resolve_export("sbert", None, None, None)
    with pytest.raises(InputError, match="applies to --preset llm2vec"):
        resolve_export("e5", None, None, None, text_mode="compat")
    with pytest.raises(InputError, match="--chat-template"):
        resolve_export("llm2vec", None, None, None, chat_template="chatml")


def test_instruction_without_a_slot_is_refused(tok):
    pre = Preprocessor(tok, build_text_spec("prompteol", "last_token", 512))
    with pytest.raises(InputError, match="no {instruction} slot"):
        pre.rows([("Classify", "text")])
    assert len(pre.rows([(None, "text"), ("  ", "text")])) == 2  # no instruction given: fine


def test_items_are_validated(tok):
    pre = Preprocessor(tok)
    with pytest.raises(InputError, match="item 1 is a tuple of 3"):
        pre.rows(["a", ("i", "t", "x")])
    with pytest.raises(InputError, match="the text of item 0 is a int"):
        pre.rows([("i", 5)])
    with pytest.raises(InputError, match="text list is empty"):
        pre.rows([])


def test_chat_template_detection_and_reference_eos():
    assert detect_chat_template(["Meta-Llama-3-8B-Instruct.Q4_K_M.gguf"])[0] == "llama3"
    assert detect_chat_template(["my-dir", "mistralai/Mistral-7B-Instruct-v0.2"])[0] == "mistral"
    assert detect_chat_template(["Qwen/Qwen2-7B-Instruct"])[0] == "qwen2"
    assert detect_chat_template(["Meta-Llama-3-8B"])[0] == "none"
    assert detect_chat_template(["SmolLM2-135M-Instruct.Q4_1.gguf"])[0] == "none"  # unknown to the reference
    assert reference_eos_text("llama", "llama3", []) == ""  # the reference returns before appending eos
    assert reference_eos_text("llama", "none", ["meta-llama/Meta-Llama-3-8B"]) == "<|end_of_text|>"
    assert reference_eos_text("llama", "none", []) == " </s>"
    assert reference_eos_text("gemma2", "gemma", []) == ""  # Gemma2Config is not a GemmaConfig
    spec = build_text_spec("llm2vec", "mean", 512, names=["google/gemma-2-9b-it"])
    assert spec.templates == ["<bos><start_of_turn>user\n{instruction}{text}<end_of_turn>"] and spec.strip_text
    assert build_text_spec("prompteol", "last_token", 512, names=["google/gemma-2-9b-it"]).chat_template == "none"


def test_e5_matches_its_reference(tok, backbone):
    task = "Given a web search query, retrieve relevant passages"
    model = EmbeddingModel(backbone, "eos_token", causal=True)
    pre = Preprocessor(tok, build_text_spec("e5", "eos_token", 512))
    got = embed(pre, model, [(task, s) for s in SENTS] + SENTS)
    expected = e5_reference(backbone, tok, [f"Instruct: {task}\nQuery: {s}" for s in SENTS] + SENTS)
    assert np.abs(got - expected).max() < 1e-4


@pytest.mark.parametrize("name", ["prompteol", "pcot", "ke", "metaeol"])
def test_eol_family_matches_its_reference(tok, backbone, name):
    model = EmbeddingModel(backbone, "last_token", causal=True)
    pre = Preprocessor(tok, build_text_spec(name, "last_token", 512))
    got = embed(pre, model, SENTS)
    prompts = [t.replace("{text}", "*sent 0*") for t in PRESETS[name].templates]
    expected = eol_reference(backbone, tok, SENTS, prompts)
    assert np.abs(got - expected).max() < 1e-4


def test_metaeol_has_the_papers_four_meta_tasks():
    assert list(METAEOL) == ["text_classification", "sentiment_analysis", "paraphrase_identification",
                             "information_extraction"]
    assert all(t.endswith('in one word:"') and t.count("{text}") == 1 for ts in METAEOL.values() for t in ts)


def _fake_artifact(root, tok, backbone, preset, pooling, causal):
    """Manifest + tokenizer + torch weights, through the one writer: what `l2v.load(dir, backend='torch')`
    reads (no ONNX graph)."""
    from l2v.artifact import ArtifactWriter, Graph, Manifest, ModelInfo, TokenizerInfo
    from l2v.export.write import write_torch

    spec = build_text_spec(preset, pooling, 512)
    hidden = backbone.config.hidden_size
    with ArtifactWriter(root, overwrite=True) as w:
        tok.save_pretrained(str(w.tmp))
        w.write_manifest(Manifest(
            source={"name": "tiny"}, model=ModelInfo("llama", hidden, backbone.config.num_hidden_layers),
            graph=Graph("causal" if causal else "bidirectional", pooling, False, hidden),
            tokenizer=TokenizerInfo(tok.pad_token, tok.pad_token_id, spec.padding_side), preset=preset,
            text={k: v for k, v in spec.to_dict().items() if k != "pooling"},
            variants={"torch": write_torch(backbone, w.tmp)}, default_variant="torch"))
        w.commit()
    return spec


@pytest.mark.parametrize("preset,pooling,causal", [("metaeol", "last_token", True), ("llm2vec", "mean", False)])
def test_artifact_embeds_the_way_it_was_built(tmp_path, tok, backbone, preset, pooling, causal):
    spec = _fake_artifact(tmp_path / "art", tok, backbone, preset, pooling, causal)
    enc = l2v.load(tmp_path / "art", backend="torch")
    assert enc.preprocessor.spec == spec
    items = SENTS + ([("Retrieve news", s) for s in SENTS] if preset == "llm2vec" else [])
    got = enc.encode(items, batch_size=3)
    expected = embed(Preprocessor(tok, spec), EmbeddingModel(backbone, pooling, causal=causal), items)
    assert got.shape == (len(items), backbone.config.hidden_size)
    assert np.abs(got - expected).max() < 1e-4
    assert np.abs(enc.encode(SENTS[2]) - got[2:3]).max() < 1e-4  # alone == in a batch, order restored


def test_cli_flags_reach_the_export(monkeypatch):
    from l2v.cli import export as cli
    from l2v.export import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "export_model", lambda model, out, **kw: seen.update(kw) or out)
    cli.main(["m", "--out", "x", "--preset", "metaeol", "--pooling", "mean", "--no-causal", "--quiet"])
    opts = pipeline.ExportOptions(**seen)
    opts.check()
    assert (opts.preset, opts.pooling, opts.causal) == ("metaeol", "mean", False)
    cli.main(["m", "--out", "x", "--template", 'Say "{text}" in one word:"', "--chat-template", "none", "--quiet"])
    opts = pipeline.ExportOptions(**seen)
    opts.check()
    assert (opts.preset, opts.pooling, opts.causal, opts.template) == ("llm2vec", "mean", False, seen["template"])


def test_cli_bad_template_exits_2_naming_it(capsys, tmp_path):
    from l2v.cli import export as cli

    assert cli.main(["--demo", "--out", str(tmp_path / "a"), "--template", "no slot"]) == 2
    assert "'no slot'" in capsys.readouterr().err
