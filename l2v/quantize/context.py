"""What a handler needs: the opened artifact, the graph it quantizes from, the calibration texts, and
the PyTorch model — handed over in memory by the export, or (lazily) rebuilt from the artifact's torch/
weights — with its activation statistics."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

STAT_SAMPLES = 512


class Context:
    def __init__(self, artifact, calib_texts: list[str], progress=None, torch_model=None, layerwise=None):
        self.artifact = artifact
        self.manifest = artifact.manifest
        self.calib_texts = calib_texts
        self.progress = progress or (lambda msg: None)
        self._torch_model = torch_model
        self.layerwise = layerwise  # l2v.model.layerwise.LayerwiseModel: calibration one layer at a time
        self._stats: dict = {}
        self.cache: dict = {}  # handlers' shared results (sensitivity ranking, fold checks)
        self.gate = None  # the recall gate (set by quantize_artifact; auto searches with it)
        self.min_recall: float | None = None

    @property
    def root(self) -> Path:
        return self.artifact.root

    @property
    def source_name(self) -> str:
        """The graph variants are made from and gated against: fp32, else the default ONNX graph."""
        from l2v.quantize.plan import source_variant

        return source_variant(self.manifest)

    @property
    def source_path(self) -> Path:
        return self.artifact.path(self.manifest.variants[self.source_name].main.path)

    @property
    def output(self) -> str:
        return self.manifest.graph.output

    @cached_property
    def preprocessor(self):
        return self.artifact.preprocessor()

    def batches(self, texts: list[str], max_length: int, batch: int = 16) -> list:
        """Length-sorted padded `Batch`es of `texts` truncated to `max_length` tokens."""
        pre = self.artifact.preprocessor(max_length)
        rows = sorted(pre.rows(texts), key=lambda r: len(r[0]))
        return [pre.pad(rows[i:i + batch]) for i in range(0, len(rows), batch)]

    @property
    def torch_model(self):
        """The fp32 `EmbeddingModel`: the one export handed over, else rebuilt from torch/ weights."""
        if self._torch_model is None:
            import torch

            from l2v.runtime.torch import load_encoder

            self._torch_model = load_encoder(self.artifact, torch.float32, needed_by="calibration")
        return self._torch_model

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
