"""What the machine has, and what this process uses (a leaf module: it imports only `l2v.errors`).

Memory figures come from /proc (Linux): `process_memory()` is this process's RSS split into anonymous
and file-backed pages, and its peak (VmHWM); `available_memory()` is what a new allocation can get
(MemAvailable, capped by a cgroup limit when one is set). `free_disk(path)` is the free space of the
filesystem that holds `path` (or its nearest existing parent). Used by the export's resource plan
(l2v.export.resources) and by the ONNX Runtime child process that reports its own peak.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

GiB = 1024**3
_STATUS = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "VmHWM": "peak"}


def process_memory(pid: int | str = "self") -> dict:
    """{rss, anon, file, peak} in bytes for `pid` (default: this process); {} where /proc is missing."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in _STATUS:
                    out[_STATUS[key]] = int(rest.split()[0]) * 1024
    except OSError:
        return {}
    return out


def _meminfo(field: str) -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def available_memory() -> int | None:
    """Bytes a new allocation can get now: MemAvailable, capped by the cgroup's limit (None if unknown)."""
    avail = _meminfo("MemAvailable")
    limit = _cgroup_limit()
    if limit is not None:
        avail = min(avail, limit) if avail is not None else limit
    return avail


def existing_parent(path) -> Path:
    p = Path(path).expanduser().resolve()
    while not p.exists():
        p = p.parent
    return p


def free_disk(path) -> int:
    """Free bytes on the filesystem that holds `path` (or would hold it)."""
    return shutil.disk_usage(existing_parent(path)).free


def gb(nbytes: float) -> str:
    """'17.2 GB' (decimal, as `df -H` and file managers say it)."""
    return f"{nbytes / 1e9:.1f} GB"


def gib(nbytes: float) -> str:
    return f"{nbytes / GiB:.2f} GiB"


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
