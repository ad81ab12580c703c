"""`Batch`: the one type every backend runs — the graph inputs of a padded batch, plus its packed view."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from l2v.errors import InputError

NAMES = ("input_ids", "attention_mask", "pooling_mask")


@dataclass(frozen=True)
class Batch:
    """`input_ids`, `attention_mask`, `pooling_mask`: int64 `[B, S]` (padding where attention_mask is 0).
    `cu_seqlens` (int32 `[B+1]`) describes the same rows without padding, for packed execution; `packed()`
    derives it when it was not given."""
    input_ids: np.ndarray
    attention_mask: np.ndarray
    pooling_mask: np.ndarray
    cu_seqlens: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self):
        shapes = {n: np.shape(getattr(self, n)) for n in NAMES}
        if len(set(shapes.values())) != 1 or len(shapes["input_ids"]) != 2:
            raise InputError(f"a batch needs three [batch, sequence] arrays of one shape, got {shapes}")
        for n in NAMES:
            a = getattr(self, n)
            if not isinstance(a, np.ndarray) or a.dtype != np.int64:
                object.__setattr__(self, n, np.asarray(a, dtype=np.int64))

    @classmethod
    def of(cls, arrays) -> "Batch":
        """From a Batch or a mapping with the three arrays (extra keys are ignored)."""
        if isinstance(arrays, Batch):
            return arrays
        missing = [n for n in NAMES if n not in arrays]
        if missing:
            raise InputError(f"a batch needs {', '.join(NAMES)}; missing {', '.join(missing)}")
        return cls(*(arrays[n] for n in NAMES))

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in NAMES:
            raise KeyError(name)
        return getattr(self, name)

    def keys(self):
        return NAMES

    def items(self):
        return ((n, getattr(self, n)) for n in NAMES)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in NAMES}

    @property
    def tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int(self.attention_mask.sum())

    def rows(self, index) -> "Batch":
        return Batch(self.input_ids[index], self.attention_mask[index], self.pooling_mask[index])

    def packed(self) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """(per-row ids without padding, per-row pooling masks, cu_seqlens int32 `[B+1]`)."""
        keep = self.attention_mask.astype(bool)
        ids = [row[m] for row, m in zip(self.input_ids, keep)]
        pooled = [row[m] for row, m in zip(self.pooling_mask, keep)]
        cu = self.cu_seqlens
        if cu is None:
            cu = np.concatenate([[0], np.cumsum([len(r) for r in ids])]).astype(np.int32)
        return ids, pooled, cu
