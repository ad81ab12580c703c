"""Kernel tests run the Triton kernel under the CPU interpreter when there is no CUDA device.

`TRITON_INTERPRET` must be set before `l2v.kernels.flash_attn` is imported (`@triton.jit` reads it
at decoration time), so it is set here, at collection, and only where no GPU is visible.
"""
from __future__ import annotations

import os

import pytest

try:
    import torch

    _HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    _HAS_CUDA = False

if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def fa():
    """The kernel module, or a skip saying why it cannot run here."""
    pytest.importorskip("triton", reason="triton is not installed: pip install 'l2v-export[gpu]' (or triton)")
    from l2v.kernels import flash_attn

    if not flash_attn.INTERPRET and not _HAS_CUDA:
        pytest.skip("no CUDA device and TRITON_INTERPRET is not 1")
    return flash_attn


@pytest.fixture(scope="session")
def kernel_device(fa):
    return "cpu" if fa.INTERPRET else "cuda"
