"""The artifact's own files: record (size + sha256) when written, check when loaded.

Sizes are checked on every load (cheap: a truncated or replaced file is caught); full sha256 on demand
(`l2v.load(..., verify=True)`), at the end of export, and before quantizing. A mismatch is an
`ArtifactError` naming the file.
"""
from __future__ import annotations

from pathlib import Path

from l2v.artifact.manifest import FileRecord, check_relpath
from l2v.errors import ArtifactError
from l2v.fileio import sha256_file


def resolve(root: Path, relpath: str) -> Path:
    """`root/relpath`, refusing any path that leaves the artifact (also through a symbolic link)."""
    check_relpath(relpath)
    root = Path(root).resolve()
    path = (root / relpath).resolve()
    if path != root and root not in path.parents:
        raise ArtifactError(f"{relpath!r} resolves to {str(path)!r}, outside the artifact {str(root)!r}",
                            hint="an artifact only refers to its own files")
    return path


def record(root: Path, relpath: str) -> FileRecord:
    path = resolve(root, relpath)
    return FileRecord(relpath, path.stat().st_size, sha256_file(path))


def check(root: Path, records: list[FileRecord], full: bool = False, what: str = "") -> None:
    """Every file exists with its recorded size; with `full`, its recorded sha256 too."""
    for rec in records:
        path = resolve(root, rec.path)
        label = f"{what}: " if what else ""
        if not path.is_file():
            raise ArtifactError(f"{label}the artifact {str(root)!r} lacks its file {rec.path!r}",
                                hint="the artifact is incomplete; copy it again or re-export it")
        size = path.stat().st_size
        if rec.size is not None and size != rec.size:
            raise ArtifactError(f"{label}{rec.path!r} in {str(root)!r} has {size} bytes, the manifest records "
                                f"{rec.size}: the file is truncated or was replaced",
                                hint="copy the artifact again or re-export it")
        if full:
            if rec.sha256 is None:
                raise ArtifactError(f"{label}{rec.path!r} has no recorded checksum (an artifact of schema 1)",
                                    hint="re-export with this l2v to get checksums")
            if sha256_file(path) != rec.sha256:
                raise ArtifactError(f"{label}{rec.path!r} in {str(root)!r} does not match its recorded sha256: "
                                    "the file is corrupt or was edited", hint="copy the artifact again or re-export it")
