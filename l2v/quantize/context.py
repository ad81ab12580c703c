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
    def streamed(self) -> bool:
        """The source graph keeps its weights in external data: quantize layer-streamed (quantize/streamed.py)."""
        from l2v.quantize.streamed import applies

        return applies(self)

    @property
    def config(self):
        """The backbone's transformers config (of the layer-streamed model when there is one)."""
        return self.model_layerwise.config if self.streamed else self.torch_model.config

    @property
    def model_layerwise(self):
        """The fp32 model one decoder layer at a time: the one a streamed export handed over, else one over the
        artifact's torch/ weights (read tensor by tensor)."""
        if self.layerwise is None:
            from l2v.model.checkpoint import SafetensorsWeights
            from l2v.model.layerwise import LayerwiseModel
            from l2v.model.merge import MergedWeights
            from l2v.runtime.torch import torch_dir, torch_variant
            from transformers import AutoConfig

            variant = torch_variant(self.artifact, needed_by="calibration")
            if variant.facts.get("adapter_dir"):
                from l2v.errors import ArtifactError

                raise ArtifactError("this artifact keeps an adapter unmerged; quantize a merged export")
            path = torch_dir(self.artifact, variant)
            config = AutoConfig.from_pretrained(str(path), local_files_only=True)
            g = self.manifest.graph
            self.layerwise = LayerwiseModel(config, MergedWeights(SafetensorsWeights(path, config)), g.pooling,
                                            g.normalize, g.attention == "causal", g.dim)
        return self.layerwise

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
        if self.streamed:  # samples only when asked: 512 rows per projection of an 8B model are ~2.5 GiB
            key = (n_texts, max_length, keep_samples)
        else:
            keep_samples = max(keep_samples, STAT_SAMPLES)  # one calibration pass serves every method
            key = (n_texts, max_length)
        if key not in self._stats:
            from l2v.quantize.calibrate import collect_stats

            self.progress(f"calibrating on {min(n_texts, len(self.calib_texts))} texts (<= {max_length} tokens)"
                          + (", one decoder layer at a time" if self.streamed else ""))
            batches = self.batches(self.calib_texts[:n_texts], max_length)
            if self.streamed:
                from l2v.quantize.calibrate import collect_stats_layerwise

                self._stats[key] = collect_stats_layerwise(self.model_layerwise, batches, keep_samples)
            else:
                self._stats[key] = collect_stats(self.torch_model, batches, keep_samples)
        return self._stats[key]
