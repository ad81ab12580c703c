"""Write a package directory the way artifacts are written: in an owned temporary sibling, moved into
place only when complete (an interrupted run leaves nothing that looks like a package; a dead run's
leftovers are swept by the next one), and never over a directory that l2v-package did not make."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from l2v.errors import InputError
from l2v.fileio import OWNER_FILE, claim_dir, owner_of, sweep

MARKER = "l2v-package.json"
TMP_SUFFIX = ".tmp-l2v-package"


def check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is a file", hint="choose a directory path")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputError(f"--out {str(out)!r} is a non-empty directory that l2v-package did not write; "
                             "refusing to replace it", hint="choose another --out or empty it yourself")
        if not overwrite:
            raise InputError(f"--out {str(out)!r} already exists", hint="pass --overwrite to replace it")


@contextlib.contextmanager
def package_dir(out, overwrite: bool, fmt: str, source: dict):
    """`with package_dir(out, overwrite, "triton", {...}) as tmp:` write into `tmp`; on success `out` is
    replaced atomically and holds `l2v-package.json` (format, source artifact, variant, time)."""
    out = Path(out).expanduser().resolve()
    check_out(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the parent of --out {str(out)!r}: {e.strerror}") from None
    for p, size in sweep(out.parent, f".{out.name}{TMP_SUFFIX}"):
        print(f"l2v: removed {str(p)!r} ({size / 1e6:.1f} MB), left behind by an interrupted run", file=sys.stderr)
    tmp = out.parent / f".{out.name}{TMP_SUFFIX}"
    if not claim_dir(tmp):
        owner = owner_of(tmp) or {}
        raise InputError(f"another l2v process (pid {owner.get('pid', '?')}) is writing {str(out)!r}",
                         hint="wait for it to finish, or choose another --out")
    try:
        yield tmp
        (tmp / OWNER_FILE).unlink()
        (tmp / MARKER).write_text(json.dumps({"format": fmt, **source, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                                             indent=1) + "\n")
        backup = None
        if out.exists():
            backup = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, backup)
        os.replace(tmp, out)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
