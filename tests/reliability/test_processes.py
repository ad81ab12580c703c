"""Cases 2 and 3 with real processes: SIGKILL during ONNX export, during validation and during quantize,
then the next run sweeps what they left and says so; SIGTERM from `timeout`; two exports to one --out."""
import json
import signal
import time

import pytest
from rel_helpers import Proc, call, cli, leftovers

SWEPT = "left behind by an interrupted run whose process is gone"
STAGES = ["[1/7] resolving the model", "[2/7] loading the model (tiny)", "[3/7] computing the PyTorch reference",
          "[4/7] exporting ONNX", "[5/7] validating the fp32 graph",
          "[6/7] writing the tokenizer, weights and manifest",
          "[7/7] verifying every file's checksum", "done: "]


@pytest.mark.slow  # ~63 s CPU (three export processes); by default: the quantize kill below, tests/artifact's sweep
def test_case2_sigkill_in_onnx_export_then_in_validation_then_a_run_sweeps(model_dir, tmp_path):
    out = tmp_path / "art"
    args = cli("export", model_dir, "--out", out, "--max-length", 64)

    first = Proc(args)
    first.wait_for("exporting ONNX")
    assert first.kill() == -signal.SIGKILL
    assert leftovers(tmp_path, "art") == [".art.tmp-l2v"] and not out.exists()

    second = Proc(args)
    second.wait_for("validating the fp32 graph")
    assert (tmp_path / ".art.tmp-l2v" / "model.onnx").is_file()  # this run's own graph, killed before use
    assert second.kill() == -signal.SIGKILL
    assert SWEPT in second.err and ".art.tmp-l2v" in second.err  # the first run's leftovers, swept at start

    third = Proc(args)
    assert third.finish() == 0, third.err
    assert SWEPT in third.err and f"removed '{tmp_path / '.art.tmp-l2v'}'" in third.err
    assert leftovers(tmp_path, "art") == [] and sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    # case 11: every stage named truly, numbered out of the real total
    stages = [ln.split(" (t=")[0] for ln in third.err.splitlines() if ln.startswith(("[", "done: "))]
    assert [s for s in stages if not any(s.startswith(w) for w in STAGES)] == [], stages
    assert len(stages) == len(STAGES) and all(s.startswith(w) for s, w in zip(stages, STAGES)), stages


def test_case2_sigkill_in_quantize_leaves_nothing_inside_and_the_next_run_sweeps(capfd, copy, tmp_path):
    manifest = (copy / "l2v.json").read_bytes()
    files = sorted(p.name for p in copy.rglob("*"))
    q = Proc(cli("quantize", copy, "--quant", "int8-smooth", "--no-speed"))
    q.wait_for("building int8-smooth")
    assert q.kill() == -signal.SIGKILL
    assert leftovers(tmp_path, "art") == [".art.variants-l2v"]  # beside the artifact, never inside it
    assert sorted(p.name for p in copy.rglob("*")) == files and (copy / "l2v.json").read_bytes() == manifest

    again = call(capfd, "quantize", copy, "--quant", "int8-dynamic", "--no-speed")
    assert again.returncode == 0, again.stderr
    assert SWEPT in again.stderr and ".art.variants-l2v" in again.stderr
    assert leftovers(tmp_path, "art") == []
    assert set(json.loads((copy / "l2v.json").read_text())["variants"]) == {"fp32", "torch", "int8-dynamic"}


def test_case2_sigterm_from_timeout_cleans_up(model_dir, tmp_path):
    """`timeout` expiring mid-export: its timer is SIGALRM to `timeout` itself, which then sends SIGTERM to
    the export (we fire that timer at a known stage instead of guessing a duration)."""
    out = tmp_path / "art"
    p = Proc(["timeout", "600", *cli("export", model_dir, "--out", out, "--max-length", 64)])
    p.wait_for("exporting ONNX")
    p.p.send_signal(signal.SIGALRM)
    assert p.finish() == 124  # timeout's own code for "timed out"
    assert "terminated: nothing was written" in p.err and "Traceback" not in p.err, p.err
    stages = [ln.split(" (t=")[0] for ln in p.err.splitlines() if ln.startswith("[")]  # case 11: named truly
    assert len(stages) >= 4 and all(s.startswith(w) for s, w in zip(stages, STAGES)), stages
    assert not out.exists() and leftovers(tmp_path, "art") == []


@pytest.mark.slow  # ~27 s CPU (two export processes); by default: tests/artifact's second-writer test (same lock)
def test_case3_two_exports_to_one_out(model_dir, tmp_path):
    """`l2v-export M --dim 16 --out r & l2v-export M --dim 32 --out r &`: one wins, the other is told at
    once who holds --out, and the winner's artifact is the one on disk."""
    out = tmp_path / "r"
    a = Proc(cli("export", model_dir, "--out", out, "--dim", 16, "--max-length", 64))
    b = Proc(cli("export", model_dir, "--out", out, "--dim", 32, "--max-length", 64))
    t0 = time.monotonic()
    codes = {16: a.finish(), 32: b.finish()}
    assert sorted(codes.values()) == [0, 2], (a.err, b.err)
    winner = 16 if codes[16] == 0 else 32
    loser = b if winner == 16 else a
    assert "another l2v process (pid" in loser.err and f"is writing '{out}'" in loser.err, loser.err
    assert "[1/7]" not in loser.err  # the lock is taken before any work: the loser fails at once
    assert json.loads((out / "l2v.json").read_text())["graph"]["dim"] == winner
    assert leftovers(tmp_path, "r") == []
    assert time.monotonic() - t0 < 600

