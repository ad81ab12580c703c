"""`l2v.load(dir)` -> `Encoder`: text in, numpy float32 embeddings out, in the caller's order."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from l2v.errors import InputError
from l2v.eval.metrics import l2_normalize
from l2v.runtime.backend import Backend, RunOptions, open_backend
from l2v.text.batch import Batch

BACKEND_NAMES = ("onnx", "torch")


class Encoder:
    """An opened artifact variant: `encode(texts)`. Thread-safe."""

    def __init__(self, artifact, backend: Backend, variant: str, max_length: int | None = None):
        self.artifact, self.backend, self.variant = artifact, backend, variant
        self.preprocessor = artifact.preprocessor(max_length)
        self.dim = int(artifact.manifest.graph.dim)
        self._tok_lock = threading.Lock()  # HF fast tokenizers are not safe under concurrent calls

    @property
    def root(self) -> Path:
        return self.artifact.root

    @property
    def manifest(self):
        return self.artifact.manifest

    def __repr__(self) -> str:
        m = self.manifest
        return (f"Encoder({str(self.root)!r}, {m.model.architecture}, {m.graph.attention}, pooling={m.graph.pooling}, "
                f"dim={self.dim}, variant={self.variant}, backend={self.backend.name})")

    def run(self, batch) -> np.ndarray:
        """One forward pass on a ready-made `Batch` (no tokenisation): for benchmarks and tests."""
        return np.asarray(self.backend.run(Batch.of(batch)), dtype=np.float32)

    def run_arrays(self, input_ids, attention_mask, pooling_mask) -> np.ndarray:
        return self.run(Batch(input_ids, attention_mask, pooling_mask))

    def encode(self, texts, batch_size: int = 32, normalize: bool | None = None,
               show_progress_bar: bool = False, max_batch_bytes: int | None = None) -> np.ndarray:
        """Embed `texts` (a str, or a list of str and `(instruction, text)` pairs) the way the artifact was
        built to (its manifest's text spec): sorted by length into batches, returned in input order.

        max_batch_bytes: the activation memory one pass may ask for (default `$L2V_MAX_BATCH_BYTES`, else
        a quarter of physical memory; `l2v.runtime.budget`): batches of long texts are split to stay under
        it, and a text that alone exceeds it is refused (`InputError`) before anything is allocated."""
        from l2v.runtime.budget import check_budget, default_budget, split

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size {batch_size!r} must be a positive integer")
        budget = default_budget() if max_batch_bytes is None else check_budget(max_batch_bytes)
        if normalize is not None and not isinstance(normalize, bool):
            raise InputError(f"normalize {normalize!r} must be True, False or None")
        in_graph = bool(self.manifest.graph.normalize)
        if normalize is False and in_graph:
            raise InputError("normalize=False, but this artifact normalises inside its graph",
                             hint="re-export without --normalize to get raw vectors")
        with self._tok_lock:
            rows = self.preprocessor.rows(texts)
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
        views = self.preprocessor.views
        batches = split([len(rows[i][0]) for i in order], batch_size, budget, self.manifest.model,
                        name=lambda pos: f"text {order[pos] // views}")
        result = np.empty((len(rows), self.dim), dtype=np.float32)
        if show_progress_bar:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="encode", unit="batch")
        for start, stop in batches:
            idx = order[start:stop]
            result[idx] = self.run(self.preprocessor.pad([rows[i] for i in idx]))
        if views > 1:  # several prompts per text (MetaEOL): their vectors' mean, from the one pass above
            result = result.reshape(-1, views, self.dim).mean(1)
            if in_graph:
                result = l2_normalize(result).astype(np.float32)
        return l2_normalize(result).astype(np.float32) if normalize and not in_graph else result

    def close(self) -> None:
        self.backend.close()


def choose_variant(manifest, backend: str | None, variant: str | None) -> str:
    """The variant to load: `variant` if given (its kind must run on `backend`, when one is named), else
    the default variant, or for backend='torch' the torch weights."""
    from l2v.runtime.backend import backend_class

    if backend is not None and backend not in BACKEND_NAMES:
        raise InputError(f"backend {backend!r} is not supported", hint=f"use one of {', '.join(BACKEND_NAMES)}")
    if variant is not None:
        v = manifest.variant(variant)
        runs_on = backend_class(v.kind).name
        if backend is not None and runs_on != backend:
            raise InputError(f"variant {variant!r} (kind {v.kind}) runs on the {runs_on} backend, not {backend}",
                             hint=f"load it with backend={runs_on!r} or leave backend out")
        return variant
    if backend in (None, backend_class(manifest.variant().kind).name):
        return manifest.default_variant
    names = [n for n, v in manifest.variants.items() if backend_class(v.kind).name == backend and v.kind == backend]
    if not names:
        from l2v.errors import ArtifactError

        raise ArtifactError(f"this artifact has no variant for the {backend} backend",
                            hint="re-export without --no-torch-weights" if backend == "torch" else
                            f"available variants: {', '.join(manifest.variants)}")
    return names[0]


def load(path, backend: str | None = None, *, variant: str | None = None, device: str = "cpu",
         engine: str | None = None, threads: int | None = None, providers=None, verify: bool = False,
         max_length: int | None = None) -> Encoder:
    """Open an artifact and one of its variants.

    backend: "onnx" (ONNX Runtime) or "torch" (PyTorch); None: whatever runs `variant`.
    variant: a name from the manifest (fp32, fp16, int8-smooth, w4, bnb-int8, torch, ...); None: the
        artifact's default (with backend="torch": the merged PyTorch weights).
    device: "cpu" or "cuda". engine: the torch backend's "padded" or "packed" (default packed on CUDA).
    threads: intra-op threads. providers: ONNX Runtime execution providers, overriding `device`.
    verify: check every file's sha256 before loading (sizes are always checked).
    max_length: truncate texts to fewer tokens than the artifact's max_length (never more).
    """
    from l2v.artifact import open_artifact

    options = RunOptions(device, threads, tuple(providers) if providers is not None else None, engine)
    art = open_artifact(path, verify=verify)
    name = choose_variant(art.manifest, backend, variant)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
        raise InputError(f"max_length {max_length!r} must be an integer >= 2")
    return Encoder(art, open_backend(art, name, options), name, max_length)
