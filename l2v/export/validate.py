"""Mandatory post-export validation: ONNX Runtime vs PyTorch on real texts of mixed lengths.

`validate_onnx` runs the graph in this process (the in-memory export of small models, as before);
`validate_in_child` runs it in a child process whose peak memory is measured and reported (streamed
exports; a low-memory session there, l2v.runtime.onnx_child). Both compare with `compare`: min cosine per row against
the PyTorch fp32 reference, thresholds fp32 0.99999, fp16 0.999, bf16 0.99. A bf16 graph is checked on
CUDA when there is one, else as fp32 with its bf16 weights (l2v.export.bf16; the figures say which).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from l2v.errors import L2VError, ValidationError
from l2v.eval.metrics import cosine_rowwise

MIN_COSINE = {"fp32": 0.99999, "fp16": 0.999, "bf16": 0.99}
HINTS = {"fp32": "the export is wrong for this model; rerun with --debug and report it"}
HINTS["fp16"] = HINTS["bf16"] = (
    "16-bit activations lose too much precision on some models (Qwen2's q/k biases did: min cosine 0.9976, so "
    "its 16-bit graphs keep attention scores in fp32, Arch.fp32_scores, docs/scale.md); export --dtype fp32 "
    "(w8 / int8-smooth variants can be added from it), and report it with --debug if the fp32 graph fails too")


def compare(got: np.ndarray, reference: np.ndarray, dtype: str, name: str, n_batched: int | None = None) -> dict:
    """Figures of `got` against `reference`; `ValidationError` below the dtype's threshold.

    `bar(iterable, desc)` shows progress over the batches.
    With `n_batched`, rows `[:n]` are texts embedded inside padded batches and rows `[n:2n]` the same
    texts embedded alone: their largest difference is reported (TEI's batch-invariance property).
    """
    threshold = MIN_COSINE[dtype]
    if got.shape != reference.shape:
        raise ValidationError(f"{name} returned shape {got.shape}, PyTorch {reference.shape}")
    if not np.isfinite(got).all():
        raise ValidationError(f"{name} returned non-finite values")
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
            f"{name} ({dtype}) disagrees with PyTorch: min cosine {figures['min_cosine']:.6f} < {threshold}",
            hint=HINTS.get(dtype, HINTS["fp32"]),
        )
    return figures


def validate_onnx(path: Path, reference: np.ndarray, batches: list, dtype: str, output: str,
                  n_batched: int | None = None, bar=None) -> dict:
    """Run the file in this process on `batches` and `compare` with `reference` rows; `bar(iterable,
    desc)` shows progress over the batches."""
    from l2v.runtime.onnx import session

    try:
        sess = session(path)
        each = bar(batches, f"validating {path.name}") if bar else batches
        got = np.concatenate([sess.run([output], b.as_dict())[0] for b in each])
    except L2VError as e:
        raise ValidationError(f"ONNX Runtime could not load the exported {path.name}: {e}") from e
    except Exception as e:  # ORT raises its own exception types for graphs it cannot run
        raise ValidationError(f"ONNX Runtime could not run {path.name}: {str(e).splitlines()[0][:300]}") from e
    return compare(got, reference, dtype, path.name, n_batched)


def validate_in_child(path: Path, reference: np.ndarray, batches: list, dtype: str, output: str,
                      n_batched: int | None, workdir: Path, providers=None) -> dict:
    """ORT in a child process (memory measured); the child's report goes into the figures as `ort`."""
    from l2v.runtime.onnx_child import ChildError, as_typed_error, run_in_child

    try:
        got, report = run_in_child(path, [b.as_dict() for b in batches], output, workdir, providers)
    except ChildError as e:
        raise as_typed_error(e) from e
    figures = compare(got, reference, dtype, Path(path).name, n_batched)
    figures["ort"] = report
    return figures


def validate_graph(path: Path, reference: np.ndarray, batches: list, dtype: str, output: str,
                   n_batched: int | None, workdir: Path, child: bool) -> dict:
    """Validate one written graph (in a child process when `child`); bf16 as the module docstring says."""
    from l2v.export import bf16

    run = validate_in_child if child else (lambda p, r, b, d, o, n, w, providers=None: validate_onnx(p, r, b, d, o, n))
    if dtype != "bf16":
        return run(path, reference, batches, dtype, output, n_batched, workdir)
    if bf16.cuda_available():
        figures = validate_in_child(path, reference, batches, dtype, output, n_batched, workdir,
                                    ["CUDAExecutionProvider"])
        return {**figures, "check": bf16.CHECK_CUDA}
    scratch = Path(workdir) / ".bf16-check"
    scratch.mkdir(exist_ok=True)
    try:
        bf16.as_fp32(path, scratch / "model.onnx")
        figures = run(scratch / "model.onnx", reference, batches, dtype, output, n_batched, workdir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {**figures, "check": bf16.CHECK_CPU}
