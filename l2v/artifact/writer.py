"""The one writer of artifacts: work in an owned temporary directory, record every file, then move into
place atomically. Two transactions, one discipline:

- `ArtifactWriter(out)`: a new artifact in `.NAME.tmp-l2v` beside `out`, committed by `os.replace`.
- `VariantWriter(artifact)`: new variants added to an existing artifact (quantization and other
  producers) in `.NAME.variants-l2v` beside it (never inside: an interrupted run must not leave
  anything that would ship with the artifact); on commit the files move in and `l2v.json` is replaced.

The temporary directory is created exclusively and records its owner (pid, start time, host), so it is
also the lock: a second writer to the same output gets a clear error, and a dead owner's leftovers
(kill -9, OOM) are swept, and reported, by the next run. Nothing that looks like an artifact is ever
left half-written.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from l2v.artifact import files
from l2v.artifact.artifact import Artifact, is_artifact
from l2v.artifact.manifest import MANIFEST, VARIANT_NAME, FileRecord, Manifest, Variant, check
from l2v.errors import ArtifactError, InputError
from l2v.fileio import atomic_write_text, claim_dir, human_bytes, owner_of, probe_writable, storage_error, sweep

TMP_SUFFIX = ".tmp-l2v"
VARIANTS_SUFFIX = ".variants-l2v"
OLD_VARIANT_TMP = ".quant-*"  # what l2v wrote inside artifacts before this writer existed


def variants_tmp(root: Path) -> Path:
    """The work directory (and lock) of a `VariantWriter` on the artifact at `root`: a sibling."""
    return root.parent / f".{root.name}{VARIANTS_SUFFIX}"


def _say(msg: str) -> None:
    print(f"l2v: {msg}", file=sys.stderr)


def _swept(paths) -> None:
    for p, size in paths:
        _say(f"removed {str(p)!r} ({human_bytes(size)}), left behind by an interrupted run whose process is gone")


def sweep_leftovers(out: Path) -> None:
    """Remove, and report, what interrupted writers of `out` left beside it (their owner is dead): run at
    the start of every export, before any work, so that even a run that fails later cleans up."""
    out = Path(out).expanduser().resolve()
    name, parent = out.name, out.parent
    if parent.is_dir():
        _swept(sweep(parent, f".{name}.tmp-*") + sweep(parent, f".{name}.old-*")
               + sweep(parent, f"..{name}{TMP_SUFFIX}{VARIANTS_SUFFIX}")  # quantizing inside an export
               + sweep(parent, variants_tmp(out).name) + (sweep(out, OLD_VARIANT_TMP) if out.is_dir() else []))


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty --out unless --overwrite; never replace a file or a foreign directory."""
    out = Path(out)
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


def check_variant_name(name: str, taken=()) -> str:
    """Variant names are file-name safe; two names that differ only in case would collide on some disks."""
    if not isinstance(name, str) or not VARIANT_NAME.match(name):
        raise InputError(f"variant name {name!r} is invalid",
                         hint="use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)")
    clash = [t for t in taken if t.lower() == name.lower() and t != name]
    if clash:
        raise InputError(f"variant name {name!r} differs from the existing {clash[0]!r} only in case",
                         hint="choose another name")
    return name


def variant_file(name: str, suffix: str = ".onnx", stem: str = "model") -> str:
    """The file name of a variant: unique by construction, since variant names are unique and file-safe."""
    return f"{stem}_{check_variant_name(name)}{suffix}"


def _claim(tmp: Path, what: str) -> None:
    if claim_dir(tmp):
        return
    owner = owner_of(tmp) or {}
    raise ArtifactError(f"another l2v process (pid {owner.get('pid', '?')}, started {owner.get('created', '?')}) "
                        f"is writing {what}", hint="wait for it to finish, or choose another --out")


def fill_records(root: Path, records: list[FileRecord]) -> None:
    for rec in records:
        if rec.size is None or rec.sha256 is None:
            new = files.record(root, rec.path)
            rec.size, rec.sha256 = new.size, new.sha256


def _write_manifest(root: Path, manifest: Manifest) -> None:
    check(manifest, str(root / MANIFEST))
    atomic_write_text(root / MANIFEST, json.dumps(manifest.to_json(), indent=2) + "\n")


class ArtifactWriter:
    """`with ArtifactWriter(out, overwrite) as w: ...write into w.tmp...; w.write_manifest(m); w.commit()`."""

    def __init__(self, out, overwrite: bool = False):
        self.out = Path(out).expanduser().resolve()
        self.overwrite = overwrite
        self.tmp = self.out.parent / f".{self.out.name}{TMP_SUFFIX}"
        self.claimed = self.committed = False

    def __enter__(self) -> "ArtifactWriter":
        check_out_dir(self.out, self.overwrite)
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            sweep_leftovers(self.out)
            _claim(self.tmp, repr(str(self.out)))
        except OSError as e:
            raise storage_error(e, f"cannot write the artifact {str(self.out)!r}") from e
        self.claimed = True
        try:  # again under the lock: another writer may have committed since the first check
            check_out_dir(self.out, self.overwrite)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def write_manifest(self, manifest: Manifest) -> Manifest:
        """Record every variant file, and every other file as shared, then write `l2v.json` into the temp dir."""
        owned = {r.path for v in manifest.variants.values() for r in v.files}
        shared = sorted(p.relative_to(self.tmp).as_posix() for p in self.tmp.rglob("*")
                        if p.is_file() and p.name not in (MANIFEST, ".l2v-owner.json"))
        manifest.files = [FileRecord(p) for p in shared if p not in owned]
        for v in manifest.variants.values():
            fill_records(self.tmp, v.files)
        fill_records(self.tmp, manifest.files)
        _write_manifest(self.tmp, manifest)
        return manifest

    def commit(self) -> Path:
        """Atomically replace `out` with the finished temporary directory."""
        if not (self.tmp / MANIFEST).is_file():
            raise ArtifactError("internal: refusing to commit an artifact without a manifest")
        if not self.overwrite and self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise ArtifactError(f"--out {str(self.out)!r} appeared while this export ran (another process wrote it)",
                                hint="pass --overwrite to replace it, or choose another --out")
        busy = owner_of(variants_tmp(self.out))
        if busy:
            raise ArtifactError(f"l2v (pid {busy.get('pid')}) is adding variants to {str(self.out)!r}",
                                hint="wait for it to finish before replacing the artifact")
        (self.tmp / ".l2v-owner.json").unlink()
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
        if self.claimed and not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # disk full, read-only, size limit ... while writing: name it
            raise storage_error(exc, f"cannot write the artifact {str(self.out)!r}") from exc


class VariantWriter:
    """Add variants to an existing artifact: `with VariantWriter(art) as w: ...files into w.tmp...;
    w.add(name, variant); w.commit(replace=[...])`. Variant file paths given to `add` are relative to
    `w.tmp` and land at the artifact's root. `w.update(name, variant)` adds files to an existing variant."""

    def __init__(self, artifact: Artifact):
        self.artifact = artifact
        self.root = artifact.root
        self.tmp = variants_tmp(self.root)
        self.added: dict[str, Variant] = {}
        self.updated: dict[str, Variant] = {}
        self.claimed = False

    def __enter__(self) -> "VariantWriter":
        what = f"cannot add variants to {str(self.root)!r}"
        for d in (self.root, self.root.parent):  # files move into the one, the work dir lives in the other
            probe_writable(d, what)
        try:
            _swept(sweep(self.root.parent, self.tmp.name) + sweep(self.root, OLD_VARIANT_TMP))
            _claim(self.tmp, f"variants into {str(self.root)!r}")
        except OSError as e:
            raise storage_error(e, what) from e
        self.claimed = True
        return self

    def add(self, name: str, variant: Variant) -> None:
        check_variant_name(name, list(self.artifact.manifest.variants) + list(self.added))
        if name in self.added:
            raise InputError(f"variant {name!r} is added twice")
        for rec in variant.files:
            files.resolve(self.tmp, rec.path)
            if not (self.tmp / rec.path).is_file() and variant.kind != "bnb":
                raise ArtifactError(f"internal: variant {name!r} lists {rec.path!r}, which was not written")
        self.added[name] = variant

    def update(self, name: str, variant: Variant) -> None:
        """Replace the entry of the existing variant `name` by `variant`, whose files are either the old
        entry's (left in place) or new files written into `self.tmp` (e.g. a TensorRT engine built later).
        Old files the new entry no longer lists are removed on commit."""
        old = self.artifact.manifest.variants.get(name)
        if old is None:
            raise InputError(f"variant {name!r} is not in this artifact")
        existing = {r.path for r in old.files}
        for rec in variant.files:
            files.resolve(self.tmp, rec.path)
            if not (self.tmp / rec.path).is_file() and rec.path not in existing:
                raise ArtifactError(f"internal: variant {name!r} lists {rec.path!r}, which was not written")
        self.updated[name] = variant

    def _commit_updates(self, manifest: Manifest) -> None:
        for name, v in self.updated.items():
            old = manifest.variants[name]
            for rec in v.files:
                if (self.tmp / rec.path).is_file():
                    rec.size = rec.sha256 = None
                    fill_records(self.tmp, [rec])
                    os.replace(self.tmp / rec.path, self.root / rec.path)
            manifest.variants[name] = v
            listed = {r.path for x in manifest.variants.values() for r in x.files} | {r.path for r in manifest.files}
            for rec in old.files:
                if rec.path not in listed and (self.root / rec.path).is_file():
                    (self.root / rec.path).unlink()

    def commit(self, replace=()) -> Manifest:
        """Move the new files in (replacing the variants named in `replace`) and write the manifest."""
        manifest = self.artifact.manifest
        for name in replace:
            old = manifest.variants.pop(name, None)
            keep = {r.path for v in manifest.variants.values() for r in v.files} | {r.path for r in manifest.files}
            for rec in (old.files if old else []):
                p = self.root / rec.path
                if rec.path not in keep and p.is_file():
                    p.unlink()
        taken = {r.path for v in manifest.variants.values() for r in v.files} | {r.path for r in manifest.files}
        for name, v in self.added.items():
            for rec in v.files:
                if rec.path in taken or (self.root / rec.path).exists():
                    raise ArtifactError(f"variant {name!r} would overwrite the artifact's file {rec.path!r}",
                                        hint="choose another variant name")
        for name, v in self.added.items():
            fill_records(self.tmp, v.files)
            for rec in v.files:
                dst = self.root / rec.path
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.tmp / rec.path, dst)
            manifest.variants[name] = v
        self._commit_updates(manifest)
        for v in manifest.variants.values():  # schema 1 artifacts: record what was never recorded
            fill_records(self.root, v.files)
        fill_records(self.root, manifest.files)
        _write_manifest(self.root, manifest)
        return manifest

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.claimed:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise storage_error(exc, f"cannot add variants to {str(self.root)!r}") from exc


def versions() -> dict:
    """The versions of what made the artifact, for its manifest."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "peft", "onnx", "onnxscript", "onnxruntime", "l2v-export"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
