"""One window of rows -> float32 vectors: tokenise each row with the artifact's preprocessor, sort the
rows by token length (longest first, ties in input order), cut them into batches of at most
`max_batch_tokens` padded tokens, run each batch, and put the vectors back in input order.

Everything here is a function of the window's rows alone, so the same window always gives the same
batches and bit-identical vectors, whichever process (local, a Ray actor, a resumed run) runs it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2v.embed.prompts import prompted
from l2v.errors import InputError, RowError
from l2v.text.batching import length_sorted_batches


@dataclass
class Encoded:
    vectors: np.ndarray  # float32 [kept, dim], in input order
    kept: list  # the rows embedded (a row that cannot be tokenised is left out with --on-error skip)
    tokens: int  # real (non-padding) tokens run
    skipped: list  # [{"at": ..., "reason": ...}] rows left out here


def encode_window(encoder, rows, max_batch_tokens: int, prompt: str | None = None, normalize: bool | None = None,
                  skip: bool = False, locate=None, on_batch=None) -> Encoded:
    """Embed `rows` (Records) with `encoder` (an `l2v.load` Encoder). `locate(record) -> str` names a row
    for an error; a row the preprocessor refuses (an instruction longer than max_length) is an error, or
    left out with `skip`. `on_batch(texts, tokens)` after each batch (texts: rows / views, a float)."""
    pp = encoder.preprocessor
    toks, kept, skipped = [], [], []
    for r in rows:
        try:
            toks.append(pp.rows([prompted(r.text, r.instruction, prompt)]))
        except InputError as e:
            where = locate(r) if locate else f"id {r.id!r}"
            if not skip:
                raise RowError(where, str(e)) from None
            skipped.append({"at": where, "reason": str(e)})
            continue
        kept.append(r)
    flat = [row for item in toks for row in item]
    if not flat:
        return Encoded(np.empty((0, encoder.dim), dtype=np.float32), kept, 0, skipped)
    out = np.empty((len(flat), encoder.dim), dtype=np.float32)
    tokens = 0
    for idx in length_sorted_batches([len(ids) for ids, _ in flat], max_batch_tokens, padded=True):
        batch = pp.pad([flat[i] for i in idx])
        out[idx] = encoder.run(batch)
        tokens += batch.tokens
        if on_batch is not None:
            on_batch(len(idx) / pp.views, batch.tokens)
    return Encoded(encoder.pool_views(out, normalize), kept, tokens, skipped)
