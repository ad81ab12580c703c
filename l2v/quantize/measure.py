"""The recall gate's measurements: a variant against the fp32 graph of the same artifact on the eval set.

Figures: mean/min cosine, recall@1 and recall@10 of nearest neighbours within the eval set (the
variant's neighbours vs fp32's), size on disk, and time per batch at batch 1 and batch 32 measured
interleaved with fp32 in the same process (so the ratio, not the absolute time, is what to trust on a
shared machine).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from l2v.errors import ValidationError


def session(model_or_path, threads: int | None = None):
    """An ORT CPU session (spinning off: the machines this runs on are often shared)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = str(model_or_path) if isinstance(model_or_path, (str, Path)) else model_or_path.SerializeToString()
    try:
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own types for graphs it cannot load
        raise ValidationError(f"ONNX Runtime could not load the variant: {str(e).splitlines()[0][:300]}") from e


class OnnxRunner:
    def __init__(self, path: Path, output: str):
        self.session, self.output = session(path), output

    def __call__(self, batch: dict) -> np.ndarray:
        try:
            return self.session.run([self.output], batch)[0]
        except Exception as e:
            raise ValidationError(f"ONNX Runtime could not run the variant: {str(e).splitlines()[0][:300]}") from e


class TorchRunner:
    def __init__(self, model):
        self.model = model

    def __call__(self, batch: dict) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(**{k: torch.from_numpy(v) for k, v in batch.items()}).float().numpy()


def embed(run, batches: list[dict]) -> np.ndarray:
    return np.concatenate([run(b) for b in batches]).astype(np.float32)


def fidelity(reference: np.ndarray, got: np.ndarray) -> dict:
    from l2v.eval.metrics import cosine_stats, neighbour_recall_at_k

    if not np.isfinite(got).all():
        raise ValidationError("the variant returned non-finite values")
    cs = cosine_stats(reference, got)
    n = len(reference)
    return {"eval_texts": n, "mean_cosine": round(cs["mean"], 6), "min_cosine": round(cs["min"], 6),
            "recall@1": round(neighbour_recall_at_k(reference, got, 1), 4),
            "recall@10": round(neighbour_recall_at_k(reference, got, min(10, n - 1)), 4)}


def speed(runs: dict, batch1: dict, batch32: dict, min_seconds: float = 0.5, max_reps: int = 20) -> dict:
    """Median seconds per call for each runner at batch 1 and batch 32, runners interleaved rep by rep."""
    out = {}
    for label, b in (("batch1", batch1), ("batch32", batch32)):
        times = {k: [] for k in runs}
        for r in runs.values():  # warm up
            r(b)
        t_start = time.perf_counter()
        while True:
            for k, r in runs.items():
                t = time.perf_counter()
                r(b)
                times[k].append(time.perf_counter() - t)
            n = len(next(iter(times.values())))
            if n >= max_reps or (n >= 3 and time.perf_counter() - t_start > min_seconds):
                break
        for k in runs:
            out.setdefault(k, {})[f"{label}_ms"] = round(1000 * float(np.median(times[k])), 3)
    return out


def speed_batches(ctx, texts: list[str], seq: int = 64) -> tuple[dict, dict]:
    """A batch of 1 and a batch of 32 eval texts truncated to `seq` tokens (the same for every variant)."""
    b32 = ctx.batches(texts[:32] * (32 // max(1, len(texts[:32])) + 1), seq, batch=32)[-1]
    b1 = {k: v[-1:] for k, v in b32.items()}
    return b1, b32
