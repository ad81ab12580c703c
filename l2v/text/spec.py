"""`TextSpec`: how text becomes tokens and which tokens are pooled. Stored in the artifact manifest."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from l2v.errors import InputError

PADDING_SIDES = ("left", "right")


@dataclass
class TextSpec:
    max_length: int = 512
    padding_side: str = "left"  # LLM2Vec convention; results do not depend on it (positions come from the mask)
    add_special_tokens: bool = True
    pool_special_tokens: bool = False  # BOS and other special tokens are attended to but not pooled
    append_eos: bool = False  # eos_token pooling appends eos and pools it

    def __post_init__(self):
        if not isinstance(self.max_length, int) or self.max_length < 1:
            raise InputError(f"max_length {self.max_length!r} must be a positive integer")
        if self.padding_side not in PADDING_SIDES:
            raise InputError(f"padding_side {self.padding_side!r} is invalid", hint="use 'left' or 'right'")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TextSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
