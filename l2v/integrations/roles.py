"""Query vs document prompts, as sentence-transformers' `encode_query` / `encode_document` choose them
(sentence_transformer/model.py): a query takes the prompt named "query" when the model has one; a
document the first of "document", "passage", "corpus" it has; otherwise nothing is passed and the
model's default prompt (if any) applies. A caller's explicit prompt or prompt name wins."""
from __future__ import annotations

from dataclasses import dataclass

from l2v.errors import InputError

QUERY_NAMES = ("query",)
DOCUMENT_NAMES = ("document", "passage", "corpus")


@dataclass(frozen=True)
class Role:
    prompt_name: str | None = None
    prompt: str | None = None

    def kwargs(self) -> dict:
        return {"prompt_name": self.prompt_name, "prompt": self.prompt}


def role(encoder, names: tuple[str, ...], prompt_name: str | None = None, prompt: str | None = None) -> Role:
    """The prompt arguments for `encoder.encode` for one role (query or document)."""
    if prompt is not None or prompt_name is not None:
        if prompt_name is not None and prompt_name not in encoder.prompts:
            raise InputError(f"prompt name {prompt_name!r} is not one of the model's prompts",
                             hint=f"available: {', '.join(encoder.prompts) or 'none; pass a prompt string instead'}")
        return Role(prompt_name, prompt)
    for name in names:
        if name in encoder.prompts:
            return Role(name)
    return Role()


def open_encoder(model, **load_kwargs):
    """An `Encoder` as is, or a path opened with `l2v.load(path, **load_kwargs)`."""
    from l2v.runtime.encoder import Encoder, load

    if isinstance(model, Encoder):
        if load_kwargs:
            raise InputError(f"load options {sorted(load_kwargs)} given with an already loaded Encoder")
        return model
    return load(model, **load_kwargs)


def require(module: str, package: str, extra: str, purpose: str):
    import importlib

    from l2v.errors import OptionalDependencyError

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise OptionalDependencyError(package, extra, purpose) from e
