"""Small file helpers every layer may use (a leaf module: it imports only `l2v.errors`).

`sha256_file` streams; `atomic_write_text` never leaves a half-written file (temp file, fsync, rename);
`storage_error` turns an `OSError` into a `StorageError` naming the path and the errno text, and
`probe_writable` checks a directory by really creating a file in it. `claim_dir` makes a dot-prefixed
work directory that records its owner (pid, process start time, host), so that a later run can tell a
dead owner's leftovers from a live writer's and sweep them.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from l2v.errors import StorageError

OWNER_FILE = ".l2v-owner.json"


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path, text: str, mode: int = 0o644) -> None:
    """Write `text` to `path` through a temporary sibling and `os.replace` (readers never see half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a pid reused by another process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # another machine's writer (shared filesystem): never ours to sweep
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = owner.get("started")
    return started is None or _start_time(pid) == started


def claim_dir(path: Path) -> bool:
    """Create `path` exclusively and record this process as its owner; False if it already exists."""
    try:
        path.mkdir(mode=0o755)
    except FileExistsError:
        return False
    owner = {"pid": os.getpid(), "started": _start_time(os.getpid()), "host": socket.gethostname(),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (path / OWNER_FILE).write_text(json.dumps(owner))
    return True


def owner_of(path: Path) -> dict | None:
    try:
        return json.loads((Path(path) / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_stale(path: Path, grace_s: float = 60.0) -> bool:
    """A work directory whose owner is dead (or that never got an owner file and is older than `grace_s`)."""
    owner = owner_of(path)
    if owner is None:
        try:
            return time.time() - Path(path).stat().st_mtime > grace_s
        except OSError:
            return False
    return not _alive(owner)


def sweep(parent: Path, pattern: str) -> list[tuple[Path, int]]:
    """Remove the stale work directories matching `pattern` in `parent`; returns [(path, bytes freed)]."""
    swept = []
    for p in sorted(Path(parent).glob(pattern)):
        if p.is_dir() and not p.is_symlink() and is_stale(p):
            size = dir_bytes(p)
            shutil.rmtree(p, ignore_errors=True)
            swept.append((p, size))
    return swept


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, one decimal)."""
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= f:
            return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"


def dir_bytes(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())


_HINTS = {
    errno.ENOSPC: "free some space on that file system, or choose another location",
    errno.EDQUOT: "your disk quota is used up; free some space, or choose another location",
    errno.EROFS: "the file system is mounted read-only; choose a writable location",
    errno.EACCES: "you may not write there; choose a writable location",
    errno.EPERM: "you may not write there; choose a writable location",
    errno.EFBIG: "a file-size limit (ulimit -f, or the file system's) is too small for the artifact",
    errno.ENOTDIR: "a part of that path is a file, not a directory",
    errno.EEXIST: "a part of that path is a file, not a directory",
}


def storage_error(e: OSError, what: str) -> StorageError:
    """`e` as one line: what was being done, the path the OS names, its errno text and what to do."""
    path = e.filename if e.filename is not None else None
    code = errno.errorcode.get(e.errno, str(e.errno)) if e.errno is not None else "?"
    text = e.strerror or str(e) or type(e).__name__
    where = f" ({str(path)!r})" if path is not None and repr(str(path)) not in what else ""
    return StorageError(f"{what}: {text} [{code}]{where}", hint=_HINTS.get(e.errno, "check the file system"))


def probe_writable(directory, what: str) -> None:
    """Create and remove a file in `directory`: the only test that holds for root, read-only mounts and
    ACLs alike. Raises `StorageError` with the OS's words."""
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".l2v-probe-")
    except OSError as e:  # name the directory, not the probe file's random name
        raise storage_error(OSError(e.errno, e.strerror, str(directory)), what) from e
    os.close(fd)
    os.unlink(probe)
