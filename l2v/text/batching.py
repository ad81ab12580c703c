"""Length-sorted batches under a token budget (one function for the runtime, the packed engine, serving
and the corpus job)."""
from __future__ import annotations

from typing import Sequence

from l2v.errors import InputError


def length_sorted_batches(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int | None = None,
                          padded: bool = False) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory shows up in the
    first batch). The budget counts the tokens a batch costs: their sum (packed execution), or with
    `padded` the batch size times its longest row. A row longer than the budget gets a batch of its own.
    Returns `list[list[int]]` covering every index once."""
    if isinstance(max_batch_tokens, bool) or not isinstance(max_batch_tokens, int) or max_batch_tokens <= 0:
        raise InputError(f"max_batch_tokens must be a positive integer, got {max_batch_tokens!r}")
    if max_batch_size is not None and (isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int)
                                       or max_batch_size <= 0):
        raise InputError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    batches, cur, cur_tokens = [], [], 0
    for i in order:
        n = int(lengths[i])
        full = max_batch_size is not None and len(cur) >= max_batch_size
        cost = (len(cur) + 1) * int(lengths[cur[0]]) if padded and cur else cur_tokens + n
        if cur and (cost > max_batch_tokens or full):
            batches.append(cur)
            cur, cur_tokens = [], 0
        cur.append(i)
        cur_tokens += n
    if cur:
        batches.append(cur)
    return batches
