"""Run a Triton repository's tokenizer model inside a real Triton core (the one nvidia-pytriton bundles).

Run with a venv made from the system Python 3.11.2 (PyTriton's python backend stub embeds it), holding
nvidia-pytriton, tritonclient[http], numpy and transformers; driven by test_triton_live.py:

    python pytriton_side.py TOKENIZER_MODEL_DIR QUERIES.json OUT.npz

A plain `tritonserver --model-repository=...` on a repository holding only our python-backend model,
with PyTriton's bundled binary, python backend and 3.11 stub (set up the way PyTriton sets up its own
workspace), queried with tritonclient over HTTP on loopback, stopped before exit.
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
import urllib.request
from pathlib import Path

import numpy as np

OUTPUTS = ("input_ids", "attention_mask", "pooling_mask")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(url: str, model: str, queries: list) -> dict:
    import tritonclient.http as http

    client = http.InferenceServerClient(url)
    out = {}
    for qi, q in enumerate(queries):
        texts = np.array([[t.encode()] for t in q["texts"]], dtype=object)
        inputs = [http.InferInput("TEXT", list(texts.shape), "BYTES")]
        inputs[0].set_data_from_numpy(texts)
        if q.get("instructions") is not None:
            ins = np.array([[t.encode()] for t in q["instructions"]], dtype=object)
            inputs.append(http.InferInput("INSTRUCTION", list(ins.shape), "BYTES"))
            inputs[1].set_data_from_numpy(ins)
        res = client.infer(model, inputs, outputs=[http.InferRequestedOutput(k) for k in OUTPUTS])
        for k in OUTPUTS:
            out[f"{qi}/{k}"] = res.as_numpy(k)
    client.close()
    return out


def wait_ready(url: str, proc, timeout: float = 300) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"tritonserver exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("tritonserver not ready")


def main() -> None:
    import pytriton
    from pytriton.utils.distribution import get_libs_path, get_stub_path

    model_dir, queries, out_path = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), sys.argv[3]
    work = Path(tempfile.mkdtemp(prefix="l2vtr_"))
    server = work / "tritonserver"
    shutil.copytree(Path(pytriton.__file__).parent / "tritonserver", server,
                    ignore=shutil.ignore_patterns("python_backend_stubs"))
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    shutil.copy(get_stub_path(ver), server / "backends" / "python" / "triton_python_backend_stub")
    repo = work / "repo"
    shutil.copytree(model_dir, repo / model_dir.name)
    http_port = free_port()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(filter(None, [str(get_libs_path()), env.get("LD_LIBRARY_PATH")]))
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    # the stub embeds /usr/lib's libpython3.11: point it at this venv's packages (numpy, transformers)
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p.endswith("site-packages")])
    cmd = [str(server / "bin" / "tritonserver"), f"--model-repository={repo}",
           f"--backend-directory={server / 'backends'}", f"--cache-directory={server / 'caches'}",
           "--http-address=127.0.0.1", f"--http-port={http_port}", "--grpc-address=127.0.0.1",
           f"--grpc-port={free_port()}", "--allow-metrics=false", f"--metrics-port={free_port()}",
           "--exit-on-error=true", "--strict-readiness=true", "--log-verbose=0"]
    log = open(Path(out_path).with_suffix(".log"), "w")
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"127.0.0.1:{http_port}"
        wait_ready(url, proc)
        out = query(url, model_dir.name, queries)
        out["_ready_s"] = np.array(time.time() - t0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    np.savez(out_path, **out)
    print(f"ok: ready in {float(out['_ready_s']):.1f}s, {len(queries)} queries")


if __name__ == "__main__":
    main()
