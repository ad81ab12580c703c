"""Triton python-backend model: TEXT [+ INSTRUCTION] -> input_ids, attention_mask, pooling_mask.

Written into `<repo>/<name>_tokenizer/1/model.py` by `l2v-package --format triton`. It runs l2v's own
preprocessing (the vendored `l2v_text` package next to this file) on the artifact's tokenizer and text
spec, so the rows are those `l2v.load(dir).encode` builds. Each request is padded (on the artifact's
padding side) to the smallest length bucket that holds its longest row, so the encoder's dynamic
batcher, which only merges requests of equal shape, can merge requests of similar length.

Needs in Triton's Python: numpy and transformers (the tokenizer only; no torch).
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

try:  # only inside Triton; the functions below are importable (and tested) without it
    import triton_python_backend_utils as pb_utils
except ImportError:
    pb_utils = None


def load_preprocessor(model_dir=HERE):
    """The artifact's tokenizer (pad token and padding side as recorded) and text spec."""
    from transformers import AutoTokenizer

    from l2v_text import Preprocessor, TextSpec

    with open(os.path.join(model_dir, "l2v_text.json"), encoding="utf-8") as f:
        meta = json.load(f)
    tok = AutoTokenizer.from_pretrained(os.path.join(model_dir, "tokenizer"), local_files_only=True)
    tok.pad_token = meta["pad_token"]
    tok.padding_side = meta["padding_side"]
    return Preprocessor(tok, TextSpec.from_dict(meta["text"])), meta


def _str(x):
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def bucket(n, buckets):
    for b in buckets:
        if n <= b:
            return b
    return n


def tokenize(pre, meta, texts, instructions=None):
    """texts / instructions: sequences of str or UTF-8 bytes (an empty instruction means none).
    Returns {name: int64 [len(texts), L]}, L the bucket of the longest row."""
    texts = [_str(t) for t in texts]
    if instructions is None:
        items = texts
    else:
        items = [(_str(i), t) if _str(i).strip() else t for i, t in zip(instructions, texts)]
    rows = pre.rows(items)
    if len(rows) != len(texts):
        raise ValueError("this artifact renders several rows per text (MetaEOL); the Triton package needs one")
    arrays = pre.pad(rows).as_dict()
    width = arrays["input_ids"].shape[1]
    extra = bucket(width, meta.get("buckets") or []) - width
    if extra > 0:
        left = pre.spec.padding_side == "left"
        for k in arrays:
            fill = pre.tokenizer.pad_token_id if k == "input_ids" else 0
            block = np.full((arrays[k].shape[0], extra), fill, dtype=np.int64)
            arrays[k] = np.concatenate([block, arrays[k]] if left else [arrays[k], block], axis=1)
    return arrays


class TritonPythonModel:
    def initialize(self, args):
        self.pre, self.meta = load_preprocessor(HERE)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                text = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
                instr = pb_utils.get_input_tensor_by_name(request, "INSTRUCTION")
                instr = None if instr is None else list(instr.as_numpy().reshape(-1))
                arrays = tokenize(self.pre, self.meta, list(text), instr)
                outputs = [pb_utils.Tensor(k, arrays[k]) for k in self.meta["inputs"]]
                responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
            except ValueError as e:  # bad UTF-8, an over-long instruction (l2v's InputError): this request fails alone
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e))))
        return responses

    def finalize(self):
        pass
