"""Case 11: what a newcomer sees. Every flag of every CLI has help text and is in the README's usage
block; the torch backend loads without a progress bar; the demo says what its model is; the artifact's
size and the batch-invariance figure in the README are the measured ones. (The export's stage names:
tests/reliability/test_processes.py; the SmolLM2 demo end to end: tests/test_smollm2_e2e.py.)"""
import re
import subprocess
import sys

import pytest

import l2v
from rel_helpers import REPO, env

CLIS = ("export", "quantize", "bench", "fetch")


def _parser(name):
    import importlib

    return importlib.import_module(f"l2v.cli.{name}").parser()


def _usage_block() -> str:
    readme = (REPO / "README.md").read_text()
    return readme[readme.index("## Usage"):].split("```", 2)[1]


@pytest.mark.parametrize("name", CLIS)
def test_case11_every_flag_has_help_and_is_in_the_readme_usage(name):
    p = _parser(name)
    usage = _usage_block()
    assert re.search(rf"^{p.prog} ", usage, re.M), f"{p.prog} is not in the README usage block"
    for action in p._actions:
        if action.dest == "help":
            continue
        assert action.help and action.help.strip(), f"{p.prog} {action.option_strings or action.dest}: no help"
        for flag in action.option_strings:
            assert re.search(rf"\[{re.escape(flag)}[\] |=]|{re.escape(flag)}[ \]]", usage), f"{p.prog} {flag} missing"


def test_case11_console_scripts_are_declared():
    toml = (REPO / "pyproject.toml").read_text()
    for name in CLIS:
        prog = _parser(name).prog
        assert f'{prog} = "l2v.cli.{name}:main"' in toml


def test_case11_torch_backend_loads_without_a_progress_bar(art, capfd):
    capfd.readouterr()
    enc = l2v.load(art, backend="torch")
    enc.encode(["a text"])
    out, err = capfd.readouterr()
    assert "Loading weights" not in err and "%|" not in err and out == "", err


def test_case11_the_demo_names_its_model_and_preset():
    from l2v.model import demo

    assert "untrained embedder" in demo.NOTE and demo.PRESET == "llm2vec" and len(demo.SENTENCES) % 2 == 0
    r = subprocess.run([sys.executable, str(REPO / "examples" / "similarity.py"), "--help"], capture_output=True,
                       text=True, env=env())
    assert r.returncode == 0 and "untrained" in r.stdout


def test_case11_long_stages_show_progress_on_a_terminal(monkeypatch):
    """The ONNX exporter reports nothing itself: a ticking elapsed-time bar stands in; the validation and
    reference loops get a bar over their batches. On a terminal only (captured output keeps stage lines)."""
    import io
    import time

    from l2v.export.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    step = Progress(True, 7)
    step("exporting ONNX")
    with step.ticker("exporting ONNX", every_s=0.05):
        time.sleep(0.3)
    assert list(step.bar(range(3), "validating")) == [0, 1, 2]
    shown = sys.stderr.getvalue()
    assert "[1/7] exporting ONNX (t=" in shown and "exporting ONNX: 00:00" in shown, shown
    assert "validating:" in shown and "/3 [" in shown, shown
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: no bars
    with Progress(True, 7).ticker("exporting ONNX"):
        pass
    assert list(Progress(True, 7).bar(range(3), "validating")) == [0, 1, 2] and sys.stderr.getvalue() == ""


def test_case11_readme_states_the_artifact_size_and_measured_batch_invariance():
    readme = (REPO / "README.md").read_text()
    assert "--no-torch-weights" in readme and "1.08 GB" in readme  # SmolLM2: two fp32 copies, measured
    assert "2.3e-4" in readme  # SmolLM2's manifest: alone vs batched max abs diff
