"""Mandatory post-export validation: ONNX Runtime vs PyTorch on real texts of mixed lengths."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from l2v.errors import L2VError, ValidationError
from l2v.eval.metrics import cosine_rowwise

MIN_COSINE = {"fp32": 0.99999, "fp16": 0.999, "bf16": 0.99}


def validate_onnx(path: Path, reference: np.ndarray, batches: list, dtype: str, output: str,
                  n_batched: int | None = None, bar=None) -> dict:
    """Run the file on `batches` and compare with `reference` rows; raise ValidationError below threshold.

    `bar(iterable, desc)` shows progress over the batches.
    With `n_batched`, rows `[:n]` are texts embedded inside padded batches and rows `[n:2n]` the same
    texts embedded alone: their largest difference is reported (TEI's batch-invariance property).
    """
    from l2v.runtime.onnx import session

    threshold = MIN_COSINE[dtype]
    try:
        sess = session(path)
        each = bar(batches, f"validating {path.name}") if bar else batches
        got = np.concatenate([sess.run([output], b.as_dict())[0] for b in each])
    except L2VError as e:
        raise ValidationError(f"ONNX Runtime could not load the exported {path.name}: {e}") from e
    except Exception as e:  # ORT raises its own exception types for graphs it cannot run
        raise ValidationError(f"ONNX Runtime could not run {path.name}: {str(e).splitlines()[0][:300]}") from e
    if got.shape != reference.shape:
        raise ValidationError(f"{path.name} returned shape {got.shape}, PyTorch {reference.shape}")
    if not np.isfinite(got).all():
        raise ValidationError(f"{path.name} returned non-finite values")
    cos = cosine_rowwise(got, reference)
    figures = {
        "rows": int(len(reference)),
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "max_abs_diff": float(np.abs(got - reference).max()),
        "threshold_min_cosine": threshold,
    }
    if n_batched:
        figures["alone_vs_batched_max_abs_diff"] = float(np.abs(got[:n_batched] - got[n_batched:2 * n_batched]).max())
    if figures["min_cosine"] < threshold:
        raise ValidationError(
            f"{path.name} ({dtype}) disagrees with PyTorch: min cosine {figures['min_cosine']:.6f} < {threshold}",
            hint="the export is wrong for this model; rerun with --debug and report it",
        )
    return figures
