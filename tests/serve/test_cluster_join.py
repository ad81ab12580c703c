"""Slow: `l2v-serve --address` joins an existing Ray cluster (a loopback head started here with `ray start
--head`), serves on it with two replicas, and on SIGTERM removes only its application: the cluster
survives. The head and everything in its session are stopped by session id, never by process name."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.slow

from l2v.serve.process import ServerProcess, free_port, session_pids  # noqa: E402


def ray_call(address: str, code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"import ray; from ray import serve; "
                           f"ray.init(address={address!r}, logging_level='ERROR'); {code}"],
                          capture_output=True, text=True, env=env, timeout=180)


@pytest.fixture()
def head(monkeypatch):
    """A private single-node cluster on loopback. Head and drivers share token auth (~/.ray/auth_token)."""
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only (see l2v.serve.server)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    tmp, port = tempfile.mkdtemp(prefix="l2vc_", dir="/tmp"), free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}",
                             "--object-store-memory=100000000"], stdout=open(os.path.join(tmp, "head.log"), "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        t0 = time.time()
        while ray_call(address, "print(ray.cluster_resources())", dict(os.environ)).returncode != 0:
            assert time.time() - t0 < 240 and proc.poll() is None, "the Ray head did not come up"
            time.sleep(2)
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(3)
        for pid in session_pids(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_join_serve_leave(head, tiny_llama_artifact):
    srv = ServerProcess(tiny_llama_artifact, ["--address", head, "--replicas", "2", "--cpus-per-replica", "0.5"])
    srv.start()
    try:
        body = json.dumps({"input": ["joined a cluster", "two replicas"]}).encode()
        req = urllib.request.Request(srv.url + "/v1/embeddings", data=body, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert [len(d["embedding"]) for d in json.loads(r.read())["data"]] == [64, 64]
        r = ray_call(head, "print(serve.status().applications['l2v'].deployments['l2v-embeddings'].replica_states)",
                     dict(os.environ))
        assert "'RUNNING': 2" in r.stdout, r.stdout + r.stderr[-2000:]
    finally:
        srv.stop(signal.SIGTERM)
    assert srv.exit_code == 0 and srv.leaked == [], srv.log_tail()
    r = ray_call(head, "print(sorted(serve.status().applications))", dict(os.environ))
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "[]", r.stderr[-2000:]  # cluster alive, app gone
