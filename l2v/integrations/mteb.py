"""An MTEB encoder (mteb 2.x `EncoderProtocol`) over an l2v artifact: `L2VMtebEncoder("artifacts/gemma")`,
then `mteb.evaluate(model, tasks)`.

`encode(inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs)` takes mteb's
`DataLoader` of batches (their "text" column) or a plain list of strings, picks the prompt as mteb's
sentence-transformers wrapper does (task name + prompt type, task name, task type + prompt type, task
type, prompt type; `AbsEncoder.get_prompt_name`) from the artifact's prompts (or `model_prompts`), and
runs `Encoder.encode`. Similarity follows the artifact's `similarity_fn_name`. Needs `mteb`
(`pip install 'l2v-export[mteb]'`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from l2v.integrations.roles import open_encoder, require

_abs = require("mteb.models.abs_encoder", "mteb", "mteb", "the MTEB integration")
_meta = require("mteb.models.model_meta", "mteb", "mteb", "the MTEB integration")


def texts_of(inputs) -> list[str]:
    """The texts of mteb's DataLoader (batches with a "text" column) or of a list of strings."""
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, (list, tuple)) and all(isinstance(t, str) for t in inputs):
        return list(inputs)
    texts: list[str] = []
    for batch in inputs:
        if not isinstance(batch, dict) or "text" not in batch:
            from l2v.errors import InputError

            raise InputError("mteb batches must hold a 'text' column", hint="l2v encoders embed text only")
        texts += list(batch["text"])
    return texts


class L2VMtebEncoder(_abs.AbsEncoder):
    """mteb encoder for an l2v artifact. `model_name`: an artifact path (or an `Encoder`); `revision`:
    the variant to load (None: the default); `model_prompts`: prompts by mteb key (task name, task
    type, "query"/"document", or "TaskName-query"), merged over the artifact's own."""

    def __init__(self, model_name, revision: str | None = None, *, device: str | None = None,
                 model_prompts: dict[str, str] | None = None, **load_kwargs: Any):
        if revision is not None:
            load_kwargs["variant"] = revision
        if device is not None:
            load_kwargs["device"] = device
        self.model = open_encoder(model_name, **load_kwargs)
        prompts = {**self.model.prompts, **(model_prompts or {})}
        resolved, _ = _abs.AbsEncoder.validate_task_to_prompt_name(prompts, raise_for_invalid_keys=False)
        self.model_prompts = resolved or None
        m = self.model.manifest
        self.mteb_model_meta = _meta.ModelMeta.create_empty({
            "name": f"l2v/{self.model.root.name}", "revision": self.model.variant, "embed_dim": self.model.dim,
            "max_tokens": m.max_length,
            "similarity_fn_name": _meta.ScoringFunction.from_str(self.model.similarity_fn_name),
            "framework": ["ONNX" if self.model.backend.name == "onnx" else "PyTorch"],
            "use_instructions": bool(self.model_prompts)})

    def encode(self, inputs, *, task_metadata, hf_split: str | None = None, hf_subset: str | None = None,
               prompt_type=None, **kwargs: Any) -> np.ndarray:
        name = self.get_prompt_name(task_metadata, prompt_type)
        prompt = self.model_prompts.get(name) if name and self.model_prompts else None
        return self.model.encode(texts_of(inputs), batch_size=int(kwargs.get("batch_size", 32)),
                                 show_progress_bar=bool(kwargs.get("show_progress_bar", False)), prompt=prompt)
