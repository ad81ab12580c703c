"""The recall gate's measurements: a variant against the reference graph of the same artifact.

Figures: mean/min cosine, recall@1 and recall@10 of nearest neighbours within the eval set (the
variant's neighbours vs the reference's), and time per batch at batch 1 and batch 32 measured
interleaved with the reference in the same process (so the ratio, not the absolute time, is what to
trust on a shared machine). Runners are backends (l2v.runtime.backend): anything with `run(batch)`.
"""
from __future__ import annotations

import numpy as np

from l2v.errors import L2VError, ValidationError
from l2v.runtime.timing import speed  # noqa: F401  (the gate's and auto's timing; the ORT child's too)


def embed(backend, batches: list) -> np.ndarray:
    try:
        return np.concatenate([backend.run(b) for b in batches]).astype(np.float32)
    except L2VError:
        raise
    except Exception as e:  # ONNX Runtime / torch raise their own types for a graph they cannot run
        raise ValidationError(f"the variant could not run: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e


def fidelity(reference: np.ndarray, got: np.ndarray) -> dict:
    from l2v.eval.metrics import cosine_stats, neighbour_recall_at_k

    if not np.isfinite(got).all():
        raise ValidationError("the variant returned non-finite values")
    cs = cosine_stats(reference, got)
    n = len(reference)
    return {"eval_texts": n, "mean_cosine": round(cs["mean"], 6), "min_cosine": round(cs["min"], 6),
            "recall@1": round(neighbour_recall_at_k(reference, got, 1), 4),
            "recall@10": round(neighbour_recall_at_k(reference, got, min(10, n - 1)), 4)}


def speed_batches(ctx, texts: list[str], seq: int = 64):
    """A batch of 1 and a batch of 32 eval texts truncated to `seq` tokens (the same for every variant)."""
    b32 = ctx.batches(texts[:32] * (32 // max(1, len(texts[:32])) + 1), seq, batch=32)[-1]
    return b32.rows(slice(-1, None)), b32
