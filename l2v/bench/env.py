"""What the numbers were measured on: machine, CPU/GPU, library versions, git commit, load."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from l2v.runtime.cpu import cpu_name

PACKAGES = ("l2v-export", "torch", "transformers", "onnxruntime", "onnxruntime-gpu", "onnx", "numpy",
            "scikit-learn", "scipy", "tensorrt", "triton", "openvino", "nncf")




def memory_gb() -> float | None:
    info = Path("/proc/meminfo")
    if not info.is_file():
        return None
    for line in info.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def library_versions() -> dict:
    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def git_commit(repo: Path | None = None) -> str:
    """`<sha>` (with `-dirty` if the tree has changes) of the checkout holding l2v; `unknown` outside git."""
    repo = repo or Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def gpu_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(device)


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_info(device: str, threads: int | None) -> dict:
    return {
        "machine": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "memory_gb": memory_gb(),
        "gpu": gpu_name(device),
        "device": device,
        "threads": threads,
        "versions": library_versions(),
        "git_commit": git_commit(),
        "load_average_start": load_average(),
    }
