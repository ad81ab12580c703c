"""Packaging an artifact for other serving stacks (docs/serving.md).

`triton`: a Triton Inference Server model repository (python-backend tokenizer + ONNX/TensorRT encoder +
ensemble). `hf`: a Hugging Face / sentence-transformers directory that TEI, vLLM and sentence-transformers
load as a bidirectional encoder. Both vendor l2v's own preprocessing (`vendor`) so that a text is
tokenised exactly as `l2v.load(dir).encode` does; `output` writes the directory atomically.
"""
FORMATS = ("triton", "hf")
