"""Prompts at encode time (sentence-transformers semantics) in every text mode, and the llm2vec preset's
default text mode (compat: reference-exact)."""
import pytest

from l2v.errors import InputError
from l2v.text import Preprocessor, TextSpec

PROMPT = "query: "


def _pooled_text(tok, row):
    ids, pooled = row
    return tok.decode([t for t, p in zip(ids, pooled) if p])


@pytest.mark.parametrize("include", [True, False])
def test_clean_mode_puts_the_prompt_before_the_text(tok, include):
    pre = Preprocessor(tok, TextSpec(include_prompt=include))
    row = pre.rows(["the fox"], PROMPT)[0]
    assert tok.decode(row[0], skip_special_tokens=True) == "query: the fox"
    assert _pooled_text(tok, row).strip() == ("query: the fox" if include else "the fox")
    assert pre.rows(["the fox"])[0] != row


def test_clean_mode_prompt_after_the_instruction_and_kept_on_truncation(tok):
    pre = Preprocessor(tok, TextSpec(max_length=30, include_prompt=False))
    ids, pooled = pre.rows([("Retrieve text", "a long text " * 20)], PROMPT)[0]
    assert len(ids) == 30
    assert tok.decode(ids, skip_special_tokens=True).startswith("Retrieve text query: a long")
    assert "query" not in _pooled_text(tok, (ids, pooled))


def test_compat_mode_pools_the_prompt_with_the_document(tok):
    pre = Preprocessor(tok, TextSpec(mode="compat", pooling="mean"))
    assert _pooled_text(tok, pre.rows(["the fox"], PROMPT)[0]).strip() == "query: the fox"


def test_resolve_prompt_follows_sentence_transformers():
    spec = TextSpec(prompts={"query": PROMPT, "document": ""}, default_prompt_name="query")
    assert spec.resolve_prompt() == PROMPT  # the default prompt
    assert spec.resolve_prompt("document") == ""  # an empty prompt beats the default
    assert spec.resolve_prompt(prompt="x: ") == "x: "
    with pytest.raises(InputError, match="'passage' is not one of"):
        spec.resolve_prompt("passage")
    with pytest.raises(InputError, match="default_prompt_name 'nope'"):
        TextSpec(prompts={"query": PROMPT}, default_prompt_name="nope")
    assert TextSpec().resolve_prompt() is None


def test_llm2vec_preset_defaults_to_compat_other_presets_to_clean():
    from l2v.export.options import ExportOptions

    assert ExportOptions().check().text_mode == "compat"
    assert ExportOptions(preset="llm2vec", text_mode="clean").check().text_mode == "clean"
    assert ExportOptions(preset="e5").check().text_mode == "clean"
    with pytest.raises(InputError, match="--text-mode compat reproduces llm2vec"):
        ExportOptions(preset="prompteol", text_mode="compat").check()
    with pytest.raises(InputError, match="--text-mode 'st' is unknown"):
        ExportOptions(text_mode="st").check()


def test_every_preprocessor_path_gets_the_default_prompt(tok):
    """Validation, calibration, the recall gate and the benchmark tokenise through `rows`: they get the
    artifact's default prompt as `encode` does; `prompt=""` is no prompt, as in sentence-transformers."""
    pre = Preprocessor(tok, TextSpec(prompts={"query": PROMPT}, default_prompt_name="query"))
    assert pre.rows(["the fox"]) == pre.rows(["the fox"], PROMPT) == pre.rows(["the fox"], prompt_name="query")
    assert pre.rows(["the fox"], "") == Preprocessor(tok, TextSpec()).rows(["the fox"])
