"""Peak memory: resident set size on CPU (Linux /proc), allocator peak and a memory cap on CUDA."""
from __future__ import annotations

from pathlib import Path

from l2v.errors import InputError

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    if not _STATUS.is_file():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float | None:
    """High-water RSS since the last `reset_peak_rss()` (or since the process started)."""
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0: write 5 to clear_refs). False where the
    platform has no such file or forbids it; the peak is then the process lifetime's."""
    if not _CLEAR_REFS.exists():
        return False
    try:
        _CLEAR_REFS.write_text("5")
    except PermissionError:
        return False
    return True


def cuda_reset_peak(device: str) -> None:
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)


def cuda_peak_mb(device: str) -> float:
    import torch

    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def apply_cuda_cap(cap_gb: float | None, device: str) -> dict:
    """Cap this process's CUDA allocations at `cap_gb` when the GPU is larger (to emulate a smaller
    card). Returns total and effective GiB."""
    import torch

    total = torch.cuda.get_device_properties(device).total_memory / 2**30
    if cap_gb is None or cap_gb >= total:
        return {"total_gb": total, "cap_gb": total, "fraction": 1.0}
    if cap_gb <= 0:
        raise InputError(f"--memory-cap-gb {cap_gb} must be positive")
    fraction = cap_gb / total
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return {"total_gb": total, "cap_gb": cap_gb, "fraction": fraction}


def largest_fitting_batch(run_batch, seq_len: int, start: int, limit: int = 4096) -> int:
    """Largest batch (doubling from `start`) for which `run_batch(batch, seq_len)` runs under the CUDA
    cap; 0 if even `start` does not fit. Only `torch.cuda.OutOfMemoryError` counts as "does not fit"."""
    import torch

    best, batch = 0, start
    while batch <= limit:
        try:
            run_batch(batch, seq_len)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        best, batch = batch, batch * 2
    return best
