"""`l2v.load(dir)` -> `Encoder`: text in, numpy float32 embeddings out, in the caller's order."""
from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

from l2v.errors import InputError
from l2v.eval.metrics import l2_normalize
from l2v.runtime.backend import Backend, RunOptions, open_backend
from l2v.text.spec import check_max_length
from l2v.text.batch import Batch
from l2v.text.batching import length_sorted_batches

BACKEND_NAMES = ("onnx", "torch", "trt")


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
        """One forward pass on a ready-made `Batch` (no tokenisation): for benchmarks and tests. Token ids
        beyond the model's embedding rows are an `InputError`, never an index error inside the graph."""
        batch = Batch.of(batch)
        rows = self.manifest.tokenizer.embedding_rows
        if rows is not None and batch.input_ids.size and (batch.input_ids.max() >= rows or batch.input_ids.min() < 0):
            bad = int(batch.input_ids[(batch.input_ids >= rows) | (batch.input_ids < 0)][0])
            raise InputError(f"token id {bad} is beyond the model's {rows} embedding rows",
                             hint="the batch holds an id this model cannot embed")
        return np.asarray(self.backend.run(batch), dtype=np.float32)

    def run_arrays(self, input_ids, attention_mask, pooling_mask) -> np.ndarray:
        return self.run(Batch(input_ids, attention_mask, pooling_mask))

    def rows(self, items, prompt: str | None = None,
             prompt_name: str | None = None) -> list[tuple[list[int], list[int]]]:
        """Validated, tokenised rows `(ids, pooled)` of `items` (`views` rows per item), thread-safe;
        `prompt` / `prompt_name` as in `encode`."""
        with self._tok_lock:
            return self.preprocessor.rows(items, prompt, prompt_name)

    def embed_rows(self, rows, batch_size: int = 32, max_batch_tokens: int | None = None,
                   progress=None, max_batch_bytes: int | None = None, name=None) -> np.ndarray:
        """Vectors `[len(rows), dim]` of tokenised rows in their order: length-sorted batches of at most
        `batch_size` rows and, with `max_batch_tokens`, at most that many padded tokens; a batch whose
        activations would exceed `max_batch_bytes` (`runtime/budget.py`) is split, and a row that alone
        exceeds it is refused (`BudgetError` naming it as `name(row index)` does). `progress`, if given, is
        called with the number of rows done after each batch."""
        from l2v.runtime.budget import check_budget, default_budget, split

        budget = default_budget() if max_batch_bytes is None else check_budget(max_batch_bytes)
        lengths = [len(r[0]) for r in rows]
        tokens = max_batch_tokens or batch_size * max(lengths, default=1)
        label = name or (lambda i: f"row {i}")
        result = np.empty((len(rows), self.dim), dtype=np.float32)
        for idx in length_sorted_batches(lengths, tokens, batch_size, padded=True):
            cuts = split([lengths[i] for i in idx], len(idx), budget, self.manifest.model,
                         name=lambda pos, idx=idx: label(idx[pos]))
            for start, stop in cuts:
                part = idx[start:stop]
                result[part] = self.run(self.preprocessor.pad([rows[i] for i in part]))
            if progress is not None:
                progress(len(idx))
        return result

    def pool_views(self, vectors: np.ndarray, normalize: bool | None = None) -> np.ndarray:
        """One vector per item from `embed_rows`' output: the mean of an item's views (MetaEOL's several
        prompts), then the optional L2 normalisation when the graph does not do it."""
        in_graph = bool(self.manifest.graph.normalize)
        views = self.preprocessor.views
        if views > 1:
            vectors = vectors.reshape(-1, views, self.dim).mean(1)
            if in_graph:
                vectors = l2_normalize(vectors).astype(np.float32)
        return l2_normalize(vectors).astype(np.float32) if normalize and not in_graph else vectors

    @property
    def prompts(self) -> dict[str, str]:
        """The named prompts `encode(prompt_name=...)` accepts (sentence-transformers artifacts)."""
        return dict(self.preprocessor.spec.prompts)

    @property
    def similarity_fn_name(self) -> str:
        """How the vectors are meant to be compared: the sentence-transformers folder's
        `similarity_fn_name`, else "cosine"."""
        st = self.manifest.sentence_transformers
        return (st.similarity_fn_name if st is not None else None) or "cosine"

    def encode(self, texts, batch_size: int = 32, normalize: bool | None = None,
               show_progress_bar: bool = False, prompt_name: str | None = None,
               prompt: str | None = None, max_batch_bytes: int | None = None) -> np.ndarray:
        """Embed `texts` (a str, or a list of str and `(instruction, text)` pairs) the way the artifact was
        built to (its manifest's text spec): sorted by length into batches, returned in input order.

        prompt_name / prompt: as sentence-transformers' `encode`: `prompt` (a string) is put before every
        text; `prompt_name` picks one of `self.prompts`; neither: the artifact's default prompt, if any.
        The prompt's tokens are pooled unless the model excludes them (`include_prompt: false`).
        max_batch_bytes: the activation memory one pass may ask for (default `$L2V_MAX_BATCH_BYTES`, else
        a quarter of physical memory; `l2v.runtime.budget`): batches of long texts are split to stay under
        it, and a text that alone exceeds it is refused (`InputError`) before anything is allocated."""
        from l2v.runtime.budget import check_budget, default_budget

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size {batch_size!r} must be a positive integer")
        budget = default_budget() if max_batch_bytes is None else check_budget(max_batch_bytes)
        if normalize is not None and not isinstance(normalize, bool):
            raise InputError(f"normalize {normalize!r} must be True, False or None")
        if normalize is False and self.manifest.graph.normalize:
            raise InputError("normalize=False, but this artifact normalises inside its graph",
                             hint="re-export without --normalize to get raw vectors")
        rows = self.rows(texts, prompt, prompt_name)
        views = self.preprocessor.views
        bar = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(rows), desc="encode", unit="text")
        try:
            vectors = self.embed_rows(rows, batch_size, progress=bar.update if bar else None,
                                      max_batch_bytes=budget, name=lambda i: f"text {i // views}")
        finally:
            if bar is not None:
                bar.close()
        return self.pool_views(vectors, normalize)

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
        if backend == "onnx" and v.kind == "trt":  # a trt variant's graph runs on ONNX Runtime too
            return variant
        if backend is not None and runs_on != backend:
            raise InputError(f"variant {variant!r} (kind {v.kind}) runs on the {runs_on} backend, not {backend}",
                             hint=f"load it with backend={runs_on!r} or leave backend out")
        return variant
    if backend in (None, backend_class(manifest.variant().kind).name):
        return manifest.default_variant
    names = [n for n, v in manifest.variants.items() if backend_class(v.kind).name == backend and v.kind == backend]
    if backend == "trt":  # the first one with an engine (opening one without says how to build it)
        names.sort(key=lambda n: not manifest.variants[n].facts.get("engine"))
    if not names:
        from l2v.errors import ArtifactError

        raise ArtifactError(f"this artifact has no variant for the {backend} backend",
                            hint="re-export without --no-torch-weights" if backend == "torch" else
                            "export with --trt (l2v-export MODEL --trt)" if backend == "trt" else
                            f"available variants: {', '.join(manifest.variants)}")
    return names[0]


def load(path, backend: str | None = None, *, variant: str | None = None, device: str | None = None,
         engine: str | None = None, threads: int | None = None, providers=None, verify: bool = False,
         max_length: int | None = None, low_memory: bool | None = None) -> Encoder:
    """Open an artifact and one of its variants.

    backend: "onnx" (ONNX Runtime), "torch" (PyTorch) or "trt" (a TensorRT engine); None: whatever runs
        `variant`. A trt variant's graph also runs with backend="onnx".
    variant: a name from the manifest (fp32, fp16, int8-smooth, w4, bnb-int8, torch, trt-int8, ...); None:
        the artifact's default (backend="torch": the merged PyTorch weights; "trt": a trt-* variant).
    device: "cpu" or "cuda"; None: "cpu", except for trt variants, which then run their engine where
        TensorRT and a CUDA GPU exist and else their graph on ONNX Runtime (saying so once).
    engine: the torch backend's "padded" or "packed" (default packed on CUDA); for trt variants
        "tensorrt", "onnxruntime" or "auto" (default: from backend and device, as above).
    threads: intra-op threads. providers: ONNX Runtime execution providers, overriding `device`.
    verify: check every file's sha256 before loading (sizes are always checked).
    max_length: truncate texts to fewer tokens than the artifact's max_length (never more).
    low_memory: ONNX Runtime on CPU keeps an fp16/bf16 graph's weights memory-mapped instead of folding them
        into an fp32 copy (slower); None: only when that copy would not fit (e.g. an 8B fp16 artifact).
    """
    from l2v.artifact import open_artifact

    art = open_artifact(path, verify=verify)
    name = choose_variant(art.manifest, backend, variant)
    check_max_length(max_length)
    if art.manifest.variants[name].kind == "trt":
        engine, device = trt_engine(backend, device, engine)
    options = RunOptions(device or "cpu", threads, tuple(providers) if providers is not None else None, engine,
                         low_memory=low_memory)
    variant_record = art.manifest.variants[name]
    if options.device == "cpu" and providers is None:
        from l2v.runtime.cpu import saturation_note

        note = saturation_note(name, variant_record)
        if note:
            warnings.warn(note, RuntimeWarning, stacklevel=2)
    runner = open_backend(art, name, options)
    here = runner.runtime_precisions()  # OpenVINO: what its CPU plugin chose here, vs at the gate
    if here:
        from l2v.runtime.cpu import plugin_note

        note = plugin_note(name, variant_record, here)
        if note:
            warnings.warn(note, RuntimeWarning, stacklevel=2)
    return Encoder(art, runner, name, max_length)


def trt_engine(backend: str | None, device: str | None, engine: str | None) -> tuple[str, str | None]:
    """(engine, device) for a trt variant: backend "trt" or device "cuda" mean the TensorRT engine,
    backend "onnx" or device "cpu" the graph on ONNX Runtime, neither: whichever can run here."""
    if backend == "trt" and device == "cpu":
        raise InputError("backend='trt' runs TensorRT engines on a CUDA GPU, not device='cpu'",
                         hint="leave device out, or run the variant's graph with backend='onnx'")
    if engine is not None:
        return engine, device
    if backend == "trt" or (device == "cuda" and backend != "onnx"):
        return "tensorrt", "cuda"
    if backend == "onnx" or device == "cpu":
        return "onnxruntime", device
    return "auto", device
