"""What a handler needs: the artifact, its fp32 graph, a tokeniser, the calibration texts, and
(lazily) the PyTorch model rebuilt from the artifact's torch/ weights and its activation statistics."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

STAT_SAMPLES = 512


class Context:
    def __init__(self, root: Path, manifest: dict, calib_texts: list[str], progress=None):
        self.root = Path(root)
        self.manifest = manifest
        self.calib_texts = calib_texts
        self.progress = progress or (lambda msg: None)
        self._stats: dict = {}
        self.cache: dict = {}  # handlers' shared results (sensitivity ranking, fold checks)
        self.gate = None  # the recall gate (set by quantize_artifact; auto searches with it)
        self.min_recall: float | None = None

    @property
    def fp32_path(self) -> Path:
        return self.root / self.manifest["variants"]["fp32"]["file"]

    @cached_property
    def preprocessor(self):
        from transformers import AutoTokenizer

        from l2v.text import Preprocessor, TextSpec

        tok = AutoTokenizer.from_pretrained(str(self.root), local_files_only=True)
        tok.pad_token = self.manifest["tokenizer"]["pad_token"]
        spec = TextSpec.from_dict(self.manifest["text"])
        tok.padding_side = spec.padding_side
        return Preprocessor(tok, spec)

    def batches(self, texts: list[str], max_length: int, batch: int = 16) -> list[dict]:
        """Length-sorted padded batches of `texts` truncated to `max_length` tokens."""
        from l2v.text import Preprocessor, TextSpec

        spec = TextSpec.from_dict({**self.manifest["text"], "max_length": max_length})
        pre = Preprocessor(self.preprocessor.tokenizer, spec)
        rows = sorted(pre.rows(texts), key=lambda r: len(r[0]))
        return [pre.pad(rows[i:i + batch]) for i in range(0, len(rows), batch)]

    @cached_property
    def torch_model(self):
        """The fp32 `EmbeddingModel` from torch/ (needed by calibration and the torch-runtime variants)."""
        import torch

        from l2v.runtime.backends import load_torch_encoder

        return load_torch_encoder(self.root, self.manifest, torch.float32, needed_by="calibration")

    def act_stats(self, n_texts: int, max_length: int, keep_samples: int = 0) -> dict:
        """Per-input-channel statistics of every nn.Linear inside the backbone, over non-padding tokens:
        {module: {"amax": [in], "mean_abs": [in], "samples": [<=keep_samples, in]}} (cached)."""
        keep_samples = max(keep_samples, STAT_SAMPLES)  # one calibration pass serves every method
        key = (n_texts, max_length)
        if key not in self._stats:
            from l2v.quantize.calibrate import collect_stats

            self.progress(f"calibrating on {min(n_texts, len(self.calib_texts))} texts (<= {max_length} tokens)")
            batches = self.batches(self.calib_texts[:n_texts], max_length)
            self._stats[key] = collect_stats(self.torch_model, batches, keep_samples)
        return self._stats[key]

