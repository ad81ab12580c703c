"""Run the real `l2v-serve` as a child process on a free loopback port, and stop it leaving nothing behind.

For tests, the load benchmark and supervisors. The server runs in a new session
(`start_new_session=True`): every process Ray starts for it (GCS, raylet, agents, the Serve controller,
proxy and replicas) inherits that session id, even those that make themselves process-group leaders, and
Ray's agents survive a SIGKILLed driver. Stopping: a signal (the server deletes the app, shuts Serve and
its private Ray down, exits 0), then whatever still carries the session id is SIGKILLed and reported in
`leaked`, so a test can assert that a clean stop left nothing behind.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _stat(pid: str) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()  # the fields after "pid (comm) "


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is `sid` (Linux /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and (f := _stat(d)) is not None and int(f[3]) == sid and f[0] != "Z":
            out.append(int(d))
    return out


def session_usage(sid: int) -> dict:
    """RSS (MiB) and CPU seconds (user + system, live processes only) of a session."""
    rss_kib, ticks = 0, 0
    for pid in session_pids(sid):
        f = _stat(str(pid))
        if f is None:
            continue
        ticks += sum(int(x) for x in f[11:15])  # utime stime, and cutime cstime of reaped children
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kib += int(line.split()[1])
        except OSError:
            pass
    return {"rss_mib": round(rss_kib / 1024), "cpu_s": round(ticks / os.sysconf("SC_CLK_TCK"), 1)}


class ServerProcess:
    """`with ServerProcess(artifact, ["--max-batch-size", "8"]) as srv: srv.url ...`; after the block,
    `srv.exit_code`, `srv.stop_seconds` and `srv.leaked` (pids that had to be killed)."""

    def __init__(self, artifact, args=(), python: str = sys.executable, startup_timeout: float = 300,
                 stop_timeout: float = 60, log_path: str | None = None):
        self.artifact, self.args, self.python = str(artifact), list(args), python
        self.startup_timeout, self.stop_timeout = startup_timeout, stop_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tempfile.mkdtemp(prefix="l2vs_", dir="/tmp")  # short: Ray's socket paths must fit 107 chars
        self.log_path = log_path or os.path.join(self.tmp, "server.log")
        self.ready: dict | None = None
        self.proc: subprocess.Popen | None = None
        self.leaked: list[int] = []
        self.exit_code: int | None = None
        self.stop_seconds: float | None = None
        self.usage: dict = {}

    def command(self, ready_file: str) -> list[str]:
        return [self.python, "-m", "l2v.cli.serve", self.artifact, "--host", "127.0.0.1", "--port", str(self.port),
                "--ray-temp-dir", os.path.join(self.tmp, "ray"), "--ready-file", ready_file, *self.args]

    def start(self) -> "ServerProcess":
        import l2v

        ready_file = os.path.join(self.tmp, "ready.json")
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)  # never join someone else's cluster by accident
        here = str(Path(l2v.__file__).resolve().parents[1])  # the child imports this very l2v
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        self._log = open(self.log_path, "w")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.command(ready_file), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        while time.perf_counter() - t0 < self.startup_timeout:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"l2v-serve exited with {code} during start-up:\n{self.log_tail()}")
            if os.path.exists(ready_file) and self.healthy():
                self.ready = json.loads(Path(ready_file).read_text())
                self.ready["first_health_s"] = round(time.perf_counter() - t0, 2)
                return self
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"l2v-serve not ready in {self.startup_timeout}s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        sid = self.proc.pid
        self.usage = session_usage(sid)
        t0 = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.exit_code = self.proc.returncode
        deadline = time.perf_counter() + 15  # children notice their parent is gone within a few seconds
        while session_pids(sid) and time.perf_counter() < deadline:
            time.sleep(0.5)
        self.stop_seconds = round(time.perf_counter() - t0, 2)
        self.leaked = session_pids(sid)
        for pid in self.leaked:  # never leave anything behind, but report it
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()
        self.proc = None
        shutil.rmtree(os.path.join(self.tmp, "ray"), ignore_errors=True)  # Ray's session dir; the log stays

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
