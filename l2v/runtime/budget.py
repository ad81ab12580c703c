"""How much memory one forward pass may ask for, and batches that stay under it.

Attention makes a padded batch's activations grow with the square of its width: a 1 MB string in an
artifact exported with a long `max_length` would otherwise make ONNX Runtime (or PyTorch) ask for
terabytes. `activation_bytes` estimates the peak of one pass from the manifest's model shape: about
three live `[B, heads, S, S]` fp32 tensors (scores, mask, probabilities) plus the MLP and residual
activations. Measured on SmolLM2 with ONNX Runtime (bench/results/encode_budget.md) the estimate is
1.2-1.4 x the real growth of the process, so it errs on the safe side. `Encoder.encode` splits its
batches to stay under the budget and refuses, with the text's index and length, a single text that
alone would exceed it.
"""
from __future__ import annotations

import os

from l2v.errors import InputError
from l2v.fileio import human_bytes as human

ENV_VAR = "L2V_MAX_BATCH_BYTES"
RAM_SHARE = 0.25  # default budget: a quarter of the machine's physical memory
HEAD_DIM_GUESS = 64  # artifacts written before the manifest recorded num_heads


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_budget() -> int:
    """`L2V_MAX_BATCH_BYTES` if set, else a quarter of physical memory (4 GiB where unknown)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return check_budget(_parse(env), ENV_VAR)
    ram = physical_memory()
    return int(ram * RAM_SHARE) if ram else 4 << 30


def _parse(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except ValueError:
        raise InputError(f"{ENV_VAR}={text!r} is not a size", hint="e.g. 2G, 512M or a number of bytes") from None


def check_budget(value, what: str = "max_batch_bytes") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{what} {value!r} must be a positive number of bytes")
    return value


def activation_bytes(model, rows: int, width: int) -> int:
    """Estimated peak activation bytes of one fp32 pass over `rows` texts padded to `width` tokens.
    `model` is the manifest's `ModelInfo` (heads and MLP width guessed for artifacts that lack them)."""
    hidden = model.hidden_size
    heads = model.num_heads or max(1, hidden // HEAD_DIM_GUESS)
    inter = model.intermediate_size or 4 * hidden
    return 4 * rows * width * (3 * heads * width + 4 * inter + 8 * hidden)


def split(lengths: list[int], batch_size: int, budget: int, model, name=str) -> list[tuple[int, int]]:
    """[start, stop) batches over rows sorted longest first: at most `batch_size` rows, and at most
    `budget` estimated bytes each. A row that alone exceeds the budget raises `BudgetError` naming it as
    `name(position)` does."""
    out, s = [], 0
    while s < len(lengths):
        width = lengths[s]
        one = activation_bytes(model, 1, width)
        if one > budget:
            raise BudgetError(
                f"{name(s)} is {width} tokens long: one pass over it needs ~{human(one)} of activations, "
                f"more than the budget of {human(budget)}",
                hint=f"truncate: l2v.load(..., max_length=N); or raise the budget: encode(..., max_batch_bytes=B) "
                     f"or {ENV_VAR}")
        n = min(batch_size, len(lengths) - s, budget // one)
        out.append((s, s + n))
        s += n
    return out


class BudgetError(InputError):
    """One text alone would need more activation memory than the budget allows."""
