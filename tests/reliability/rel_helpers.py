"""Helpers for the reliability tests, imported by name (`from rel_helpers import ...`: a module called
`conftest` is ambiguous when several test folders have one)."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path



REPO = Path(__file__).resolve().parents[2]


CONTEXT = 131072


def env(**extra) -> dict:
    e = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
             TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def cli(module: str, *args) -> list[str]:
    return [sys.executable, "-m", f"l2v.cli.{module}", *map(str, args)]


def run(module: str, *args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cli(module, *args), capture_output=True, text=True, env=env(), timeout=timeout, **kw)


class Result:
    def __init__(self, returncode: int, stderr: str):
        self.returncode, self.stderr = returncode, stderr


def call(capfd, module: str, *args) -> Result:
    """The CLI's `main` in this process (its return value is the exit code `sys.exit(main())` gives):
    for the cases that are not about processes, without paying a Python start-up each."""
    import importlib

    capfd.readouterr()
    try:
        code = importlib.import_module(f"l2v.cli.{module}").main(list(map(str, args)))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    return Result(code, capfd.readouterr().err)


class Proc:
    """A CLI process whose stderr is read line by line, to act at a named stage."""

    def __init__(self, argv: list[str], **popen):
        self.p = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env(),
                                  **popen)
        self.lines: list[str] = []

    def wait_for(self, needle: str, timeout: float = 600) -> str:
        t0 = time.monotonic()
        for line in self.p.stderr:
            self.lines.append(line)
            if needle in line:
                return line
            if time.monotonic() - t0 > timeout:
                break
        raise AssertionError(f"never saw {needle!r}; stderr: {''.join(self.lines)[-2000:]}")

    def kill(self, sig=signal.SIGKILL) -> int:
        self.p.send_signal(sig)
        return self.finish()

    def finish(self, timeout: float = 600) -> int:
        """Wait (reaping it: an unreaped zombie still counts as alive) and collect the rest of stderr."""
        out, err = self.p.communicate(timeout=timeout)
        self.lines.append(err)
        self.stdout = out
        return self.p.returncode

    @property
    def err(self) -> str:
        return "".join(self.lines)


def leftovers(parent: Path, name: str) -> list[str]:
    """Hidden work directories of l2v beside `name` in `parent`."""
    return sorted(p.name for p in Path(parent).iterdir() if p.name.startswith(f".{name}."))


@contextlib.contextmanager
def tmpfs(path: Path, size: str, ro: bool = False):
    """A real tmpfs of `size` at `path` (needs root with CAP_SYS_ADMIN); yields None where not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    ok = False
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
        ok = mount.returncode == 0
    try:
        yield path if ok else None
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
