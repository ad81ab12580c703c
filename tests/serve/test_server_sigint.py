"""Slow (a second private Ray instance): Ctrl-C (SIGINT) on a serving `l2v-serve` deletes the application,
shuts Serve and Ray down and exits 0 with nothing left in its session. The default run covers SIGTERM
(test_server_live.py)."""
import json
import signal
import urllib.request

import pytest

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.slow

from l2v.serve.process import ServerProcess  # noqa: E402


def test_ctrl_c_stops_everything(tiny_llama_artifact):
    srv = ServerProcess(tiny_llama_artifact, ["--num-cpus", "2"]).start()
    try:
        req = urllib.request.Request(srv.url + "/v1/embeddings", data=json.dumps({"input": "before Ctrl-C"}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert len(json.loads(r.read())["data"][0]["embedding"]) == 64
    finally:
        srv.stop(signal.SIGINT)
    assert srv.exit_code == 0, srv.log_tail()
    assert srv.leaked == [], f"processes left behind: {srv.leaked}"
    assert "l2v-serve: stopping" in srv.log_tail()
