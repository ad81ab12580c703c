"""The artifact directory: written to a temporary sibling, validated, then moved into place.

An interrupted or failed run leaves nothing that looks like an artifact (the temporary directory is
removed; a crash leaves only a dot-prefixed `.NAME.tmp-*` directory, never `l2v.json` under NAME).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from l2v.errors import ArtifactError

MANIFEST = "l2v.json"
SCHEMA_VERSION = 1


def is_artifact(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty --out unless --overwrite; never overwrite a file or a foreign dir silently."""
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"--out {str(out)!r} exists and is a file", hint="choose a directory path")
    if out.is_dir() and any(out.iterdir()):
        what = "an l2v artifact" if is_artifact(out) else "a non-empty directory that is not an l2v artifact"
        if not overwrite:
            raise ArtifactError(f"--out {str(out)!r} already exists and is {what}",
                                hint="pass --overwrite to replace it, or choose another --out")
        if not is_artifact(out):
            raise ArtifactError(f"--out {str(out)!r} is {what}; refusing to replace it even with --overwrite",
                                hint="choose another --out or empty the directory yourself")


class ArtifactWriter:
    """`with ArtifactWriter(out, overwrite) as w: ...write into w.tmp...; w.commit()`."""

    def __init__(self, out: Path, overwrite: bool = False):
        self.out = Path(out).resolve()
        self.overwrite = overwrite
        self.tmp: Path | None = None
        self.committed = False

    def __enter__(self) -> "ArtifactWriter":
        check_out_dir(self.out, self.overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        os.chmod(self.tmp, 0o755)  # mkdtemp makes it private; an artifact is meant to be shared
        return self

    def write_manifest(self, manifest: dict) -> None:
        manifest = {"schema_version": SCHEMA_VERSION, **manifest}
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")

    def commit(self) -> Path:
        """Atomically replace `out` with the finished temporary directory."""
        if not (self.tmp / MANIFEST).is_file():
            raise ArtifactError("internal: refusing to commit an artifact without a manifest")
        backup = None
        if self.out.exists():
            backup = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.replace(self.out, backup)
        os.replace(self.tmp, self.out)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        self.committed = True
        return self.out

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed and self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def read_manifest(path: Path) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"artifact {str(path)!r} does not exist or is not a directory")
    if not is_artifact(path):
        raise ArtifactError(f"{str(path)!r} is not an l2v artifact (no {MANIFEST})",
                            hint="create one with: l2v-export MODEL --out DIR")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{MANIFEST} in {str(path)!r} is not valid JSON: {e}") from e
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(f"artifact schema {manifest.get('schema_version')!r} is not supported by this l2v",
                            hint=f"this l2v reads schema {SCHEMA_VERSION}")
    return manifest


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "peft", "onnx", "onnxscript", "onnxruntime", "l2v-export"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
