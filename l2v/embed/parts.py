"""The output directory: part files written atomically, the job state, the lock, the manifest.

    DIR/part-000000.parquet ...   one per window: `id`, `embedding` (fixed-size list of the dtype)
    DIR/embed.json                the manifest, written last: the job is complete when it exists
    DIR/.l2v-embed-job.json       the job's fingerprint (artifact, variant, inputs, options)
    DIR/.l2v-embed.lock/          held while a run writes (owner pid; a dead owner's lock is swept)

A part is written to a hidden temporary name, fsynced and renamed into place, so a reader (or a run
after kill -9) sees whole parts or nothing. Each part's Parquet metadata records its job id and window,
which is how a resumed run knows what is done.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np

from l2v.errors import InputError, JobChangedError
from l2v.fileio import atomic_write_text, claim_dir, is_stale, owner_of

PART = "part-{:06d}.parquet"
PART_RE = re.compile(r"^part-(\d{6})\.parquet$")
TMP_RE = re.compile(r"^\.part-\d{6}\.parquet\.tmp-")
STATE = ".l2v-embed-job.json"
MANIFEST = "embed.json"
LOCK = ".l2v-embed.lock"
META_KEY = b"l2v_embed"
OURS = (STATE, MANIFEST, LOCK)


def job_id(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- parts
def write_part(out: Path, k: int, ids: list, id_kind: str, stored: np.ndarray, dtype: str, dim: int,
               meta: dict) -> int:
    """Write window `k`'s part atomically; returns its size in bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from l2v.embed.quantize import arrow_type

    etype = arrow_type(dtype, dim)
    id_type = pa.int64() if id_kind == "integer" else pa.string()
    flat = pa.array(np.ascontiguousarray(stored).reshape(-1), type=etype.value_type)
    emb = pa.FixedSizeListArray.from_arrays(flat, etype.list_size)
    schema = pa.schema([("id", id_type), ("embedding", etype)], metadata={META_KEY: json.dumps(meta)})
    table = pa.Table.from_arrays([pa.array(ids, type=id_type), emb], schema=schema)
    name = PART.format(k)
    tmp = out / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out / name)
    finally:
        if tmp.exists():
            tmp.unlink()
    return (out / name).stat().st_size


def part_meta(path: Path) -> dict:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[META_KEY])


def done_parts(out: Path, job: str, warn=print) -> dict[int, dict]:
    """{window: its part's metadata} for the parts of job `job` in `out`. A part of another job is an
    error (the state file and the parts disagree); an unreadable part is removed and redone."""
    done = {}
    for p in sorted(out.iterdir()):
        m = PART_RE.match(p.name)
        if not m:
            continue
        try:
            meta = part_meta(p)
        except Exception as e:  # a damaged file (pyarrow's own errors, bad JSON): redo that window
            warn(f"warning: {p.name} is unreadable ({str(e).splitlines()[0][:120]}); it is removed and redone")
            p.unlink()
            continue
        if meta.get("job") != job or meta.get("window") != int(m.group(1)):
            raise JobChangedError(f"{p.name} in {str(out)!r} belongs to another job",
                                  hint="rerun with --restart to discard the earlier output")
        meta["bytes"] = p.stat().st_size
        done[int(m.group(1))] = meta
    return done


def remove_temporaries(out: Path) -> int:
    n = 0
    for p in out.iterdir():
        if TMP_RE.match(p.name):
            p.unlink()
            n += 1
    return n


# ---------------------------------------------------------------- the directory
def is_job_dir(out: Path) -> bool:
    return (out / STATE).is_file() or (out / MANIFEST).is_file()


def check_out_dir(out: Path) -> None:
    """DIR is new, empty, or an l2v-embed job's output (anything else is refused, never deleted)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is not a directory")
    if out.is_dir() and not is_job_dir(out):
        foreign = [p.name for p in out.iterdir() if not (PART_RE.match(p.name) or TMP_RE.match(p.name)
                                                          or p.name in OURS)]
        if foreign or any(PART_RE.match(p.name) for p in out.iterdir()):
            raise InputError(f"--out {str(out)!r} is not empty and holds no l2v-embed job "
                             f"(it has {', '.join(sorted(foreign)[:5]) or 'parts without a job state'})",
                             hint="choose a new or empty directory")


def clear(out: Path) -> int:
    """--restart: remove what a job wrote (parts, temporaries, manifest, state); nothing else."""
    n = 0
    for p in list(out.iterdir()):
        if PART_RE.match(p.name) or TMP_RE.match(p.name) or p.name in (STATE, MANIFEST):
            p.unlink()
            n += 1
    return n


def read_state(out: Path) -> dict | None:
    try:
        return json.loads((out / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise JobChangedError(f"the job state {str(out / STATE)!r} is unreadable ({e})",
                              hint="rerun with --restart to start over") from e


def write_state(out: Path, fingerprint: dict) -> None:
    atomic_write_text(out / STATE, json.dumps({"format": "l2v-embed-job", "job": job_id(fingerprint),
                                               "fingerprint": fingerprint}, indent=1, sort_keys=True))


def write_manifest(out: Path, manifest: dict) -> None:
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))


class Lock:
    """The owned lock directory: one writer per DIR; a dead owner's lock (kill -9) is swept."""

    def __init__(self, out: Path):
        self.path = out / LOCK

    def __enter__(self):
        if not claim_dir(self.path):
            if not is_stale(self.path, grace_s=5.0):
                owner = owner_of(self.path) or {}
                raise InputError(f"another l2v-embed (pid {owner.get('pid', '?')}) is writing {str(self.path.parent)!r}",
                                 hint="wait for it, or stop it; a lock left by a killed run is removed automatically")
            shutil.rmtree(self.path, ignore_errors=True)
            if not claim_dir(self.path):
                raise InputError(f"cannot take the lock {str(self.path)!r}", hint="another run took it just now")
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
