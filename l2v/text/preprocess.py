"""Text -> `input_ids`, `attention_mask`, `pooling_mask` (numpy int64 `[B, S]`), the graph's inputs."""
from __future__ import annotations

import numpy as np

from l2v.errors import InputError
from l2v.text.spec import TextSpec


def check_texts(texts) -> list[str]:
    """Validate user texts: a non-empty list of str (or UTF-8 bytes); a clear error names the bad item."""
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise InputError("the text list is empty", hint="pass at least one text")
    out = []
    for i, t in enumerate(texts):
        if isinstance(t, bytes):
            try:
                t = t.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"text {i} is not valid UTF-8 (byte 0x{t[e.start]:02x} at offset {e.start})",
                                 hint="decode it with the right encoding first") from e
        if not isinstance(t, str):
            raise InputError(f"text {i} is a {type(t).__name__}, not a string")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputError(f"text {i} holds a character that is not valid UTF-8 at offset {e.start}",
                             hint="it was probably decoded with errors='surrogateescape'") from e
        out.append(t)
    return out


class Preprocessor:
    """Tokenise, truncate to `max_length`, pad on `padding_side`, and mark the pooled tokens."""

    def __init__(self, tokenizer, spec: TextSpec | None = None):
        self.tokenizer = tokenizer
        self.spec = spec or TextSpec()
        if tokenizer.pad_token_id is None:
            raise InputError("the tokenizer has no pad token", hint="the artifact's tokenizer must define one")

    def _ids(self, text: str) -> tuple[list[int], list[int]]:
        tok, spec = self.tokenizer, self.spec
        enc = tok(text, add_special_tokens=spec.add_special_tokens, return_special_tokens_mask=True,
                  truncation=False)
        ids, special = list(enc["input_ids"]), list(enc["special_tokens_mask"])
        if not spec.add_special_tokens:
            special = [0] * len(ids)
        pooled = [1 if spec.pool_special_tokens or not s else 0 for s in special]
        limit = spec.max_length - (1 if spec.append_eos else 0)
        ids, pooled = ids[:limit], pooled[:limit]
        if spec.append_eos or not any(pooled):
            # eos pooling, or an empty text: the eos token stands for it so the vector stays defined
            ids.append(tok.eos_token_id if tok.eos_token_id is not None else tok.pad_token_id)
            pooled.append(1)
        return ids, pooled

    def rows(self, texts) -> list[tuple[list[int], list[int]]]:
        """Validated, tokenised, truncated rows `(ids, pooled)`, one per text, unpadded."""
        return [self._ids(t) for t in check_texts(texts)]

    def batch(self, texts) -> dict[str, np.ndarray]:
        return self.pad(self.rows(texts))

    def pad(self, rows: list[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
        width = max(len(ids) for ids, _ in rows)
        n = len(rows)
        input_ids = np.full((n, width), self.tokenizer.pad_token_id, dtype=np.int64)
        attention = np.zeros((n, width), dtype=np.int64)
        pooling = np.zeros((n, width), dtype=np.int64)
        for i, (ids, pooled) in enumerate(rows):
            sl = slice(width - len(ids), width) if self.spec.padding_side == "left" else slice(0, len(ids))
            input_ids[i, sl] = ids
            attention[i, sl] = 1
            pooling[i, sl] = pooled
        return {"input_ids": input_ids, "attention_mask": attention, "pooling_mask": pooling}
