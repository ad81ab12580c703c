"""Embedding recipes as presets of one artifact format: attention + pooling + how text is rendered.

`resolve_export(preset, pooling, causal, template)` gives the graph settings (before the model is
loaded, so bad flags fail fast); `build_text_spec(...)` gives the `TextSpec` stored in the manifest.
Sources of every template are in docs/text.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from l2v.errors import InputError
from l2v.text.spec import TextSpec, check_template

USER_MODES = ("clean", "compat")  # "st" is set by a sentence-transformers source, never by a flag

# PromptEOL, Jiang et al. 2023, "Scaling Sentence Embeddings with Large Language Models" (arXiv 2307.16645)
PROMPTEOL = 'This sentence : "{text}" means in one word:"'
# Pretended CoT and Knowledge Enhancement, Zhang et al. 2024, "Simple Techniques for Enhancing Sentence
# Embeddings in Generative Language Models" (arXiv 2404.03921)
PCOT = 'After thinking step by step , this sentence : "{text}" means in one word:"'
KE = ("The essence of a sentence is often captured by its main subjects and actions, while descriptive terms "
      'provide additional but less central details. With this in mind , this sentence : "{text}" means in one word:"')
# MetaEOL, Lei et al. 2024, "Meta-Task Prompting Elicits Embeddings from Large Language Models" (ACL 2024,
# arXiv 2402.18458): four meta-tasks, two prompts each, as in the authors' evaluation.py
# (github.com/Yibin-Lei/MetaEOL); `*sent 0*` is our {text}.
_FOR = 'For this task, this sentence : "{text}"'
_ENH = 'To enhance the performance of this task, this sentence : "{text}"'
METAEOL = {
    "text_classification": [
        "In this task, you're presented with a text excerpt. Your task is to categorize the excerpt into a broad "
        "category such as 'Education', 'Technology', 'Health', 'Business', 'Environment', 'Politics', or "
        "'Culture'. These categories help in organizing content for better accessibility and targeting. "
        f'{_FOR} should be classified under one general category in one word:"',
        "In this task, you're given a statement and you need to determine whether it's presenting an 'Opinion' "
        "or a 'Fact'. This distinction is vital for information verification, educational purposes, and content "
        f'analysis. {_FOR} discriminates between opinion and fact in one word:"',
    ],
    "sentiment_analysis": [
        "In this task, you're given a review from an online platform. Your task is to generate a rating for the "
        "product based on the review on a scale of 1-5, where 1 means 'extremely negative' and 5 means "
        f"'extremely positive'. {_FOR} reflects the sentiment in one word:\"",
        "In this task, you're reading a personal diary entry. Your task is to identify the predominant emotion "
        f'expressed, such as joy, sadness, anger, fear, or love. {_FOR} conveys the emotion in one word:"',
    ],
    "paraphrase_identification": [
        "In this task, you're presented with two sentences. Your task is to assess whether the sentences convey "
        "the same meaning. Use 'identical', 'similar', 'different', or 'unrelated' to describe the relationship. "
        f'{_ENH} means in one word:"',
        "In this task, you're given a sentence and a phrase. Your task is to determine if the phrase can be a "
        "contextual synonym within the given sentence. Options include 'yes', 'no', or 'partially'. "
        f'{_ENH} means in one word:"',
    ],
    "information_extraction": [
        "In this task, you're examining a news article. Your task is to extract the most critical fact from the "
        f'article. {_FOR} encapsulates the key fact in one word:"',
        "In this task, you're reviewing a scientific abstract. Your task is to identify the main entities (e.g., "
        "proteins, diseases) and their relations (e.g., causes, treats). "
        f'{_FOR} highlights the primary entity or relation in one word:"',
    ],
}

# llm2vec 0.2.3 prepare_for_tokenization (llm2vec.py L147-168): (prefix, suffix) around the text.
CHAT_TEMPLATES = {
    "none": ("", ""),
    "llama3": ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
    "mistral": ("[INST] ", " [/INST]"),  # also Llama-2 chat
    "llama2": ("[INST] ", " [/INST]"),
    "gemma": ("<bos><start_of_turn>user\n", "<end_of_turn>"),
    "qwen2": ("<|im_start|>user\n", "<|im_end|>"),
}
# The hub names the reference keys its templates on; `--chat-template auto` matches the model's name or
# the adapters' base_model_name_or_path against them, once, at export (the artifact stores the result).
REFERENCE_NAMES = {
    "meta-llama/Meta-Llama-3-8B-Instruct": "llama3",
    "mistralai/Mistral-7B-Instruct-v0.2": "mistral",
    "meta-llama/Llama-2-7b-chat-hf": "llama2",
    "google/gemma-2-9b-it": "gemma",
    "Qwen/Qwen2-1.5B-Instruct": "qwen2",
    "Qwen/Qwen2-7B-Instruct": "qwen2",
}
CHAT_CHOICES = ("auto", *CHAT_TEMPLATES)


@dataclass(frozen=True)
class Preset:
    causal: bool
    pooling: str
    templates: tuple = ("{instruction}{text}",)
    instruction_format: str = "{instruction} "
    doc_max_length: int | None = None
    text_normalize: str = "none"
    notes: str = field(default="", compare=False)


PRESETS = {
    "llm2vec": Preset(False, "mean", doc_max_length=400,
                      notes="LLM2Vec 0.2.3: bidirectional, mean over the text (+ chat suffix), instruction not pooled"),
    "e5": Preset(True, "eos_token", instruction_format="Instruct: {instruction}\nQuery: ",
                 notes="E5-Mistral: causal, eos appended and pooled; queries 'Instruct: {task}\\nQuery: {text}'"),
    "prompteol": Preset(True, "last_token", (PROMPTEOL,), text_normalize="eol", notes="PromptEOL"),
    "pcot": Preset(True, "last_token", (PCOT,), text_normalize="eol", notes="Pretended chain of thought"),
    "ke": Preset(True, "last_token", (KE,), text_normalize="eol", notes="Knowledge enhancement"),
    "metaeol": Preset(True, "last_token", tuple(t for ts in METAEOL.values() for t in ts), text_normalize="eol",
                      notes="MetaEOL: mean of the last-token vectors of 8 meta-task prompts"),
}
DEFAULT_PRESET = "llm2vec"


def get_preset(name: str | None) -> tuple[str, Preset]:
    name = DEFAULT_PRESET if name is None else name
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}", hint=f"choose one of {', '.join(PRESETS)}")
    return name, PRESETS[name]


def default_text_mode(preset: str | None, text_mode: str | None) -> str:
    """`--text-mode` unless None: the llm2vec preset embeds reference-exact (`compat`) by default, because
    LLM2Vec models were trained and evaluated with exactly that pre-processing and existing indexes hold
    those vectors; every other preset `clean` (docs/text.md)."""
    if text_mode is not None:
        return text_mode
    return "compat" if get_preset(preset)[0] == "llm2vec" else "clean"


def resolve_export(preset: str | None, pooling: str | None, causal: bool | None, template: str | None,
                   chat_template: str = "auto", text_mode: str | None = None) -> tuple[str, str, bool]:
    """(preset name, pooling, causal): the preset's values unless the caller overrides them."""
    from l2v.model.pooling import check_pooling

    name, p = get_preset(preset)
    text_mode = default_text_mode(name, text_mode)
    if template is not None:
        check_template(template, "--template")
    if chat_template not in CHAT_CHOICES:
        raise InputError(f"--chat-template {chat_template!r} is unknown", hint=f"use one of {', '.join(CHAT_CHOICES)}")
    if text_mode not in USER_MODES:
        raise InputError(f"--text-mode {text_mode!r} is unknown", hint=f"use one of {', '.join(USER_MODES)}")
    if text_mode == "compat" and name != "llm2vec":
        raise InputError(f"--text-mode compat reproduces llm2vec 0.2.3 and applies to --preset llm2vec, not {name}")
    return name, check_pooling(pooling or p.pooling), p.causal if causal is None else bool(causal)


def _basename(name: str) -> str:
    return str(name).rstrip("/").split("/")[-1].lower()


def _matches(candidate: str, repo: str) -> bool:
    """'Meta-Llama-3-8B-Instruct', '…/Meta-Llama-3-8B-Instruct' or 'Meta-Llama-3-8B-Instruct.Q4_K_M.gguf'."""
    c = re.sub(r"\.gguf$", "", _basename(candidate))
    base = re.escape(_basename(repo))
    return re.fullmatch(base + r"([._-](i?q\d\w*|b?f(p)?16|f32)\w*)*", c) is not None


def detect_chat_template(names: list[str]) -> tuple[str, str]:
    """('llama3', 'reason') when a name is one the reference keys a template on, else ('none', reason)."""
    for n in names:
        for repo, chat in REFERENCE_NAMES.items():
            if n and _matches(n, repo):
                return chat, f"{n!r} matches {repo}"
    return "none", "no name matches a model llm2vec 0.2.3 gives a chat template"


def reference_eos_text(model_type: str, chat: str, names: list[str]) -> str:
    """The literal string llm2vec 0.2.3 appends for eos pooling (llm2vec.py L169-179), keyed on the config
    class, not on the tokenizer: Llama-3-Instruct returns early (nothing), Llama/Mistral ' </s>', Gemma
    (1 only) '<eos>', Qwen2 '<|endoftext|>', others nothing."""
    if chat == "llama3":
        return ""
    if any(n and _matches(n, "meta-llama/Meta-Llama-3-8B") for n in names):
        return "<|end_of_text|>"
    from l2v.model.arch import ARCHS

    return ARCHS[model_type].eos_text if model_type in ARCHS else ""


def adapter_base_names(adapters) -> list[str]:
    """The `base_model_name_or_path` of each adapter (for `--chat-template auto`); an unreadable adapter
    config is an `AdapterError` (never skipped: it would silently change the chat template)."""
    from l2v.model.adapters import read_config

    return [n for a in adapters or [] if (n := read_config(a).get("base_model_name_or_path"))]


def build_text_spec(preset: str | None, pooling: str, max_length: int, template: str | None = None,
                    chat_template: str = "auto", text_mode: str | None = None, doc_max_length: int | None = -1,
                    model_type: str = "", names: list[str] = ()) -> TextSpec:
    """The manifest's text spec. `names`: the model's and the adapters' base names (for `auto`);
    `doc_max_length` -1 keeps the preset's, 0 or None turns it off."""
    name, p = get_preset(preset)
    text_mode = default_text_mode(name, text_mode)
    templates = [template] if template is not None else list(p.templates)
    if chat_template == "auto":
        chat = detect_chat_template(list(names))[0] if name == "llm2vec" else "none"
    else:
        chat = chat_template
    head, tail = CHAT_TEMPLATES[chat]
    templates = [head + t + tail for t in templates]
    eos = pooling == "eos_token"
    return TextSpec(
        max_length=max_length, append_eos=eos, preset=name, templates=templates,
        instruction_format=p.instruction_format, chat_template=chat,
        doc_max_length=p.doc_max_length if doc_max_length == -1 else (doc_max_length or None),
        strip_text=name == "llm2vec" and (chat != "none" or eos), text_normalize=p.text_normalize,
        mode=text_mode,
        eos_text=reference_eos_text(model_type, chat, list(names)) if eos and text_mode == "compat" else None,
        pooling=pooling,
    )


ST_PRESET = "sentence-transformers"  # the manifest's preset for an artifact made from an ST folder


def build_st_text_spec(st, max_length: int, padding_side: str) -> TextSpec:
    """The text recipe of a sentence-transformers folder (`l2v.model.st.STModel`): the tokenizer's own
    special tokens, every token pooled (minus the prompt when `include_prompt` is False), prompts as the
    folder names them plus sentence-transformers' empty `query` / `document` defaults."""
    prompts = {"query": "", "document": "", **st.prompts}
    return TextSpec(max_length=max_length, padding_side=padding_side, add_special_tokens=True,
                    pool_special_tokens=True, append_eos=False, preset=ST_PRESET, templates=["{text}"],
                    mode="st", pooling=st.pooling, prompts=prompts, default_prompt_name=st.default_prompt_name,
                    include_prompt=st.include_prompt)
