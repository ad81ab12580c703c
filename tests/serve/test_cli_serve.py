"""l2v-serve refuses bad input in a second, before Ray starts: one line, exit 2, no traceback."""
import socket
import subprocess
import sys

import pytest


def serve(*args, pre=""):
    code = f"import sys; {pre}from l2v.cli.serve import main; sys.exit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def one_line_error(r, *needles):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: "), r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def test_not_an_artifact(tmp_path):
    one_line_error(serve(str(tmp_path)), "is not an l2v artifact")


def test_unknown_variant(tiny_llama_artifact):
    one_line_error(serve(str(tiny_llama_artifact), "--variant", "int4"), "variant 'int4' is not in this artifact",
                   "available: fp32, torch")


def test_busy_port(tiny_llama_artifact):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line_error(serve(str(tiny_llama_artifact), "--port", str(port)), f"cannot listen on 127.0.0.1:{port}",
                       "pick another --port")


@pytest.mark.parametrize("flag,value", [("--max-batch-size", "0"), ("--replicas", "0"), ("--port", "70000")])
def test_bad_numbers(tiny_llama_artifact, flag, value):
    one_line_error(serve(str(tiny_llama_artifact), flag, value), f"{flag} ")


def test_without_ray_the_hint_names_the_extra(tiny_llama_artifact):
    from l2v.serve.process import free_port

    r = serve(str(tiny_llama_artifact), "--port", str(free_port()), pre="sys.modules['ray'] = None; ")
    one_line_error(r, "l2v-serve needs the optional package 'ray[serve]'", "pip install 'l2v-export[serve]'")
