"""Engine tests: without CUDA, TRITON_INTERPRET=1 is set before anything imports the Triton kernel, so
`attn_impl="triton"` runs under the CPU interpreter here. Helpers live in engine_tiny_models.py."""
from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="module", params=("llama", "mistral", "qwen2", "qwen3", "gemma"))
def arch_model(request):
    from engine_tiny_models import tiny_model

    return request.param, tiny_model(request.param)
