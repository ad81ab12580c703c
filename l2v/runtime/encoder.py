"""`l2v.load(dir)` -> `Encoder`: text in, numpy float32 embeddings out, in the caller's order."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from l2v.errors import InputError
from l2v.eval.metrics import l2_normalize


def _l2(x: np.ndarray) -> np.ndarray:
    return l2_normalize(x).astype(np.float32)


class Encoder:
    def __init__(self, root: Path, manifest: dict, backend, variant: str, preprocessor):
        self.root, self.manifest, self.backend, self.variant = root, manifest, backend, variant
        self.preprocessor = preprocessor
        self.dim = int(manifest["dim"])
        self._tok_lock = threading.Lock()  # HF fast tokenizers are not safe under concurrent calls

    def __repr__(self) -> str:
        m = self.manifest
        return (f"Encoder({str(self.root)!r}, {m['architecture']}, {m['attention']}, pooling={m['pooling']}, "
                f"dim={self.dim}, variant={self.variant}, backend={type(self.backend).__name__})")

    def run_arrays(self, input_ids, attention_mask, pooling_mask) -> np.ndarray:
        """One forward pass on ready-made arrays (no tokenisation): for benchmarks and tests."""
        arrays = {"input_ids": np.asarray(input_ids, dtype=np.int64),
                  "attention_mask": np.asarray(attention_mask, dtype=np.int64),
                  "pooling_mask": np.asarray(pooling_mask, dtype=np.int64)}
        return np.asarray(self.backend.run(arrays), dtype=np.float32)

    def encode(self, texts, batch_size: int = 32, normalize: bool | None = None,
               show_progress_bar: bool = False) -> np.ndarray:
        """Embed `texts` (a str, or a list of str and `(instruction, text)` pairs) the way the artifact was
        built to (its manifest's text spec): sorted by length into batches, returned in input order."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size {batch_size!r} must be a positive integer")
        in_graph = bool(self.manifest["normalize"])
        if normalize is False and in_graph:
            raise InputError("normalize=False, but this artifact normalises inside its graph",
                             hint="re-export without --normalize to get raw vectors")
        with self._tok_lock:
            rows = self.preprocessor.rows(texts)
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
        result = np.empty((len(rows), self.dim), dtype=np.float32)
        starts = range(0, len(order), batch_size)
        if show_progress_bar:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="encode", unit="batch")
        for s in starts:
            idx = order[s:s + batch_size]
            arrays = self.preprocessor.pad([rows[i] for i in idx])
            result[idx] = self.backend.run(arrays)
        views = getattr(self.preprocessor, "views", 1)
        if views > 1:  # several prompts per text (MetaEOL): their vectors' mean, from the one pass above
            result = result.reshape(-1, views, self.dim).mean(1)
            if in_graph:
                result = _l2(result)
        return _l2(result) if normalize and not in_graph else result


def load(path, backend: str = "onnx", device: str = "cpu", variant: str | None = None,
         providers=None, threads: int | None = None, engine: str | None = None) -> Encoder:
    """backend "onnx" (variant: fp32, fp16, quantized ones) or "torch" (engine "padded", or "packed":
    the padding-free engine, the default on device="cuda")."""
    from transformers import AutoTokenizer

    from l2v.export.artifact import read_manifest
    from l2v.runtime.backends import make_backend
    from l2v.text import Preprocessor, TextSpec

    root = Path(path).expanduser().resolve()
    manifest = read_manifest(root)
    if variant in (manifest.get("torch_variants") or {}):
        if backend != "torch":
            raise InputError(f"variant {variant!r} is a PyTorch (bitsandbytes) variant",
                             hint="load it with backend='torch'")
        from l2v.quantize.torch_methods import load_torch_variant

        return load_torch_variant(root, variant, device)
    tokenizer = AutoTokenizer.from_pretrained(str(root), local_files_only=True)
    tok = manifest["tokenizer"]
    tokenizer.pad_token = tok["pad_token"]
    spec = TextSpec.from_dict(manifest["text"])
    tokenizer.padding_side = spec.padding_side
    impl, name = make_backend(root, manifest, backend, device, variant, providers, threads, engine)
    return Encoder(root, manifest, impl, name, Preprocessor(tokenizer, spec))
