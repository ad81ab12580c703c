"""`TextSpec`: how text becomes tokens and which tokens are pooled. Stored in the artifact manifest.

Defaults reproduce the foundation behaviour: one template `{instruction}{text}`, every non-special token
of the text pooled. Presets (`l2v.text.presets`) fill the other fields; see docs/text.md.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from l2v.errors import InputError

PADDING_SIDES = ("left", "right")
MODES = ("clean", "compat", "st")
NORMALIZERS = ("none", "eol")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check_template(template, what: str = "template") -> str:
    """A template holds `{text}` once and optionally `{instruction}` once, before `{text}`."""
    if not isinstance(template, str):
        raise InputError(f"{what} must be a string, got {type(template).__name__}")
    bad = sorted({m for m in _PLACEHOLDER.findall(template) if m not in ("text", "instruction")})
    if bad:
        raise InputError(f"{what} {template!r} has unknown placeholder(s) {', '.join('{%s}' % b for b in bad)}",
                         hint="only {text} and {instruction} are filled in")
    if template.count("{text}") != 1:
        raise InputError(f"{what} {template!r} must contain {{text}} exactly once",
                         hint='e.g. --template \'This sentence : "{text}" means in one word:"\'')
    n_instr = template.count("{instruction}")
    if n_instr > 1 or (n_instr and template.index("{instruction}") > template.index("{text}")):
        raise InputError(f"{what} {template!r} may hold {{instruction}} once, before {{text}}",
                         hint="instruction tokens are never pooled, so they must precede the text")
    return template


def check_max_length(value, what: str = "max_length") -> None:
    """A truncation length asked of an artifact at run time: None (the artifact's own) or an integer >= 2."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
        raise InputError(f"{what} {value!r} must be an integer >= 2",
                         hint="leave it out to use the artifact's own max_length")


@dataclass
class TextSpec:
    max_length: int = 512  # tokens, special tokens and appended eos included
    padding_side: str = "left"  # LLM2Vec convention; results do not depend on it (positions come from the mask)
    add_special_tokens: bool = True
    pool_special_tokens: bool = False  # BOS and other tokenizer-added tokens are attended to but not pooled
    append_eos: bool = False  # eos_token pooling appends eos and pools it
    # -- templates and instructions (docs/text.md) --
    preset: str | None = None  # informational: the preset the export used
    templates: list[str] = field(default_factory=lambda: ["{instruction}{text}"])  # >1: mean over them (MetaEOL)
    instruction_format: str = "{instruction} "  # what a given instruction puts at {instruction} (stripped first)
    chat_template: str = "none"  # informational: the chat wrapping already inside `templates`
    doc_max_length: int | None = None  # LLM2Vec word-level truncation of the text to this many tokens
    strip_text: bool = False  # rstrip the text (LLM2Vec does so when a chat template or eos is used)
    text_normalize: str = "none"  # "eol": PromptEOL/MetaEOL sentence clean-up
    mode: str = "clean"  # "compat": llm2vec 0.2.3 bug-for-bug; "st": sentence-transformers exact (docs/text.md)
    eos_text: str | None = None  # compat only: the literal string llm2vec appends for eos pooling
    pooling: str | None = None  # the graph's pooling (compat needs it for the empty-document rule)
    # -- prompts (sentence-transformers semantics: the prompt string is put before the text) --
    prompts: dict = field(default_factory=dict)  # name -> prompt text, for encode(prompt_name=...)
    default_prompt_name: str | None = None  # applied when encode gets neither prompt nor prompt_name
    include_prompt: bool = True  # False: the prompt's tokens are attended to but not pooled

    def __post_init__(self):
        if not isinstance(self.max_length, int) or self.max_length < 1:
            raise InputError(f"max_length {self.max_length!r} must be a positive integer")
        if self.padding_side not in PADDING_SIDES:
            raise InputError(f"padding_side {self.padding_side!r} is invalid", hint="use 'left' or 'right'")
        if isinstance(self.templates, str):
            self.templates = [self.templates]
        self.templates = list(self.templates or [])
        if not self.templates:
            raise InputError("a text spec needs at least one template")
        for t in self.templates:
            check_template(t)
        if "{instruction}" not in self.instruction_format:
            raise InputError(f"instruction format {self.instruction_format!r} lacks {{instruction}}")
        if self.doc_max_length is not None and (not isinstance(self.doc_max_length, int) or self.doc_max_length < 1):
            raise InputError(f"doc_max_length {self.doc_max_length!r} must be a positive integer or None")
        if self.mode not in MODES:
            raise InputError(f"text mode {self.mode!r} is invalid", hint=f"use one of {', '.join(MODES)}")
        if not isinstance(self.prompts, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.prompts.items()):
            raise InputError(f"prompts {self.prompts!r} must map names to strings")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise InputError(f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                             f"({', '.join(self.prompts) or 'none'})")
        if self.text_normalize not in NORMALIZERS:
            raise InputError(f"text_normalize {self.text_normalize!r} is invalid",
                             hint=f"use one of {', '.join(NORMALIZERS)}")

    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str | None:
        """sentence-transformers' rule (`_resolve_prompt`): `prompt` wins (a `prompt_name` given with it is
        ignored, with a warning); else the named prompt (an unknown name is an `InputError` listing the
        names); else the default prompt, if the model names one; else none."""
        if prompt is not None:
            if not isinstance(prompt, str):
                raise InputError(f"prompt {prompt!r} must be a string")
            if prompt_name is not None:
                import warnings

                warnings.warn("give either prompt or prompt_name, not both; prompt_name is ignored", stacklevel=3)
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise InputError(f"prompt_name {prompt_name!r} is not one of this artifact's prompts",
                                 hint=f"available: {', '.join(self.prompts) or 'none (pass prompt=... instead)'}")
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts[self.default_prompt_name]
        return None

    @property
    def views(self) -> int:
        """Rows per input item (MetaEOL: one per meta-task prompt)."""
        return len(self.templates)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TextSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
