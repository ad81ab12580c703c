"""`open_artifact(dir)`: the one way to open an artifact — its typed manifest, tokenizer and text spec.

Used by the runtime (`l2v.load`), quantization and the benchmark alike.
"""
from __future__ import annotations

import json
import threading
from functools import cached_property
from pathlib import Path

from l2v.artifact import files
from l2v.artifact.manifest import MANIFEST, Manifest, Variant
from l2v.errors import ArtifactError


def is_artifact(path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path) -> Manifest:
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"artifact {str(path)!r} does not exist or is not a directory")
    if not is_artifact(path):
        raise ArtifactError(f"{str(path)!r} is not an l2v artifact (no {MANIFEST})",
                            hint="create one with: l2v-export MODEL --out DIR")
    source = str(path / MANIFEST)
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{source} is not UTF-8 text", hint="the file is damaged; re-export the artifact") from e
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{source} is not valid JSON: {e}", hint="the file is damaged; re-export the artifact") from e
    return Manifest.from_json(data, source)


class Artifact:
    """An opened artifact directory. `files` of every variant are relative to `root`."""

    def __init__(self, root: Path, manifest: Manifest):
        self.root, self.manifest = Path(root), manifest
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Artifact({str(self.root)!r}, variants={list(self.manifest.variants)})"

    def path(self, relpath: str) -> Path:
        return files.resolve(self.root, relpath)

    def variant(self, name: str | None = None) -> Variant:
        return self.manifest.variant(name)

    def variant_files(self, variant: Variant) -> list:
        """The records a variant needs: its own, its base's (bnb runs on torch's weights), the shared ones."""
        recs = list(variant.files)
        if variant.base:
            recs += self.manifest.variants[variant.base].files
        return recs + list(self.manifest.files)

    def check(self, variant: Variant | str | None = None, full: bool = False) -> None:
        """Sizes (and with `full` the sha256) of the files a variant needs; every variant when None."""
        if variant is None:
            for name, v in self.manifest.variants.items():
                files.check(self.root, v.files, full, f"variant {name!r}")
            files.check(self.root, self.manifest.files, full)
            return
        v = self.variant(variant) if not isinstance(variant, Variant) else variant
        files.check(self.root, self.variant_files(v), full)

    @cached_property
    def tokenizer(self):
        """The artifact's tokenizer with its recorded pad token and padding side (offline)."""
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(self.root), local_files_only=True)
        except Exception as e:  # damaged files surface as OSError, ValueError, KeyError, tokenizers' bare Exception
            raise ArtifactError(f"cannot load the tokenizer of {str(self.root)!r}: {str(e).splitlines()[0][:200]}",
                                hint="the artifact's tokenizer files are missing or damaged; re-export it") from e
        info = self.manifest.tokenizer
        tok.pad_token = info.pad_token
        tok.padding_side = info.padding_side
        return tok

    @property
    def text_spec(self):
        return self.manifest.text_spec()

    def preprocessor(self, max_length: int | None = None):
        """Items -> graph inputs exactly as the artifact was built to (optionally truncating shorter)."""
        from l2v.text import Preprocessor

        with self._lock:
            tok = self.tokenizer
        return Preprocessor(tok, self.manifest.text_spec(max_length), self.manifest.tokenizer.embedding_rows)


def open_artifact(path, verify: bool = False) -> Artifact:
    """Read and check the manifest; `verify` also checks every file's sha256 (reads them all)."""
    root = Path(path).expanduser().resolve()
    art = Artifact(root, read_manifest(root))
    if verify:
        art.check(full=True)
    return art
