"""`--prompt-name NAME`: a prompt the artifact's manifest names (sentence-transformers' `prompts`).

Two small functions, so that the embed job follows whatever the encoder's prompt API becomes:
`resolve_prompt` looks the name up in the manifest; `prompted` turns a row into the item that is
tokenised. Today a prompt is put before the text, as sentence-transformers does (`prompt + text`).
"""
from __future__ import annotations

from l2v.errors import InputError


def available_prompts(manifest) -> dict:
    prompts = getattr(manifest, "prompts", None)
    return dict(prompts) if isinstance(prompts, dict) else {}


def resolve_prompt(manifest, name: str | None) -> str | None:
    """The prompt text called `name` in the manifest; a clear error naming the available ones."""
    if name is None:
        return None
    prompts = available_prompts(manifest)
    if name not in prompts:
        have = ", ".join(sorted(prompts)) if prompts else "none: this artifact's manifest has no prompts"
        raise InputError(f"--prompt-name {name!r} is not a prompt of this artifact (available: {have})",
                         hint="pass one of the available names, or drop --prompt-name")
    return prompts[name]


def prompted(text: str, instruction: str | None, prompt: str | None):
    """The item `Encoder.encode` would take for this row: a string, or an (instruction, text) pair."""
    if prompt is not None:
        return prompt + text
    return (instruction, text) if instruction is not None else text
