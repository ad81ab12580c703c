"""`l2v-embed` end to end on a tiny exported artifact: vectors equal `encode`, kill -9 at a random point
then resume gives every id once with bit-identical vectors, changed inputs/artifact/options are refused,
bad rows are reported or skipped and counted, int8/binary match sentence-transformers' rule."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from embed_helpers import FAST, ROOT, bad_instruction_corpus, corpus, read_output, run, write_jsonl

import l2v
from l2v.cli.embed import main as cli
from l2v.embed import EmbedOptions, embed_corpus
from l2v.embed.parts import part_meta
from l2v.embed.quantize import int8_ranges, quantize
from l2v.errors import InputError, JobChangedError, RowError

def test_vectors_equal_encode_and_manifest(artifact, rows, reference, jsonl):
    ids, emb, m = read_output(reference)
    assert ids == [r["id"] for r in rows]
    enc = l2v.load(artifact)
    ref = enc.encode([r["text"] for r in rows])
    assert emb.dtype == np.float32 and emb.shape == (240, enc.dim)
    assert np.abs(emb - ref).max() < 1e-5  # other batches than encode's, same vectors to rounding
    variant = enc.artifact.variant("fp32")
    assert m["variant"] == {"name": "fp32", "kind": "onnx", "dtype": "fp32", "sha256": variant.files[0].sha256}
    assert m["dim"] == enc.dim and m["dtype"] == "float32" and m["rows"] == 240 and m["skipped"] == 0
    assert m["inputs"][0]["size"] == jsonl.stat().st_size and len(m["inputs"][0]["sha256"]) == 64
    assert m["normalization"] == {"in_graph": False, "applied": False, "unit_length": False}
    assert len(m["parts"]) == 15 and m["tokens"] > 240
    assert m["run"]["texts"] == 240 and m["run"]["texts_per_s"] > 0 and m["run"]["tokens_per_s"] > 0


def test_parquet_schema(reference, artifact, jsonl, tmp_path):
    out = tmp_path / "o"
    run(artifact, [jsonl], out, window=300)
    schema = pq.read_schema(out / "part-000000.parquet")
    assert str(schema.field("id").type) == "string"
    assert str(schema.field("embedding").type) == "fixed_size_list<element: float>[64]"
    assert sorted(p.name for p in out.iterdir()) == [".l2v-embed-job.json", "embed.json", "part-000000.parquet"]


def _cli_args(artifact, jsonl, out):
    return [sys.executable, "-m", "l2v.cli.embed", str(artifact), str(jsonl), "--out", str(out), "--window", "16",
            "--max-batch-tokens", "256", "--quiet"]


@pytest.mark.parametrize("seed", [1, 2])
def test_kill9_then_resume_is_exact(artifact, jsonl, reference, tmp_path, seed):
    """A real l2v-embed process killed with SIGKILL at a random moment after its first part; the rerun
    finishes the job: every id exactly once, vectors bit-identical to the uninterrupted run."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(_cli_args(artifact, jsonl, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    rng = random.Random(seed)
    target, delay = rng.randint(1, 12), rng.uniform(0.0, 0.05)  # a random point inside the run
    deadline = time.time() + 240
    while len(list(out.glob("part-*.parquet"))) < target and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = sorted(out.glob("part-*.parquet"))
    assert not (out / "embed.json").exists() and 1 <= len(done) < 15, "the kill must land mid-run"
    for p in done:  # whatever the kill interrupted, a visible part is a whole part
        assert pq.read_table(p).num_rows == part_meta(p)["rows"]
    assert all(p.name.startswith(".") for p in out.iterdir() if not p.name.startswith(("part-", "embed")))

    manifest = run(artifact, [jsonl], out)
    ids, emb, m = read_output(out)
    ref_ids, ref_emb, _ = read_output(reference)
    assert ids == ref_ids and len(set(ids)) == len(ids) == 240
    assert np.array_equal(emb, ref_emb)
    assert manifest["run"]["windows_kept"] == len(done) and manifest["run"]["windows_run"] == 15 - len(done)
    assert not any(p.name.startswith(".part-") for p in out.iterdir())  # the killed run's temporary is gone


def test_rerun_of_a_complete_job_does_nothing(artifact, tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", corpus(20))
    out = tmp_path / "out"
    run(artifact, [src], out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    logs = []
    embed_corpus(EmbedOptions(str(artifact), [str(src)], str(out), **FAST), log=logs.append)
    assert logs == [f"already complete: 20 rows in 2 parts in {out}"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_changes_are_refused_then_restart(artifact, tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", corpus(20))
    out = tmp_path / "out"
    run(artifact, [src], out)
    text = src.read_text()
    src.write_text(text.replace('"d3"', '"e3"'))  # same size, other content
    with pytest.raises(JobChangedError, match="input c.jsonl changed \\(same size, different sha256\\)"):
        run(artifact, [src], out)
    src.write_text(text + json.dumps({"id": "new", "text": "one more row"}) + "\n")
    with pytest.raises(JobChangedError, match="input c.jsonl changed \\(size .* bytes\\).*--restart"):
        run(artifact, [src], out)
    with pytest.raises(JobChangedError, match="--max-batch-tokens changed \\(256 -> 128\\)"):
        run(artifact, [src], out, max_batch_tokens=128)
    art2 = tmp_path / "art2"
    shutil.copytree(artifact, art2)
    (art2 / "l2v.json").write_text((art2 / "l2v.json").read_text() + "\n")
    with pytest.raises(JobChangedError, match="the artifact changed"):
        run(art2, [src], out)
    m = run(artifact, [src], out, restart=True)
    assert m["rows"] == 21 and read_output(out)[0][-1] == "new"


def test_bad_rows_fail_before_anything_is_written_or_are_skipped(artifact, tmp_path):
    rows = corpus(20)
    rows[5]["text"] = ""
    del rows[9]["text"]
    rows[12]["id"] = rows[2]["id"]
    src = write_jsonl(tmp_path / "bad.jsonl", rows)
    out = tmp_path / "out"
    with pytest.raises(RowError, match="bad.jsonl line 6 \\(id 'd5'\\): field 'text' is empty"):
        run(artifact, [src], out)
    assert not out.exists()
    m = run(artifact, [src], out, on_error="skip")
    ids, _, _ = read_output(out)
    assert m["skipped"] == 3 and m["rows"] == 17 and len(ids) == 17 and "d5" not in ids
    assert [s["at"] for s in m["skipped_rows"]] == ["bad.jsonl line 6 (id 'd5')", "bad.jsonl line 10 (id 'd9')",
                                                    "bad.jsonl line 13 (id 'd2')"]
    assert m["skipped_rows"][2]["reason"] == "duplicate id 'd2' (first at bad.jsonl line 3)"


def test_a_row_the_preprocessor_refuses(artifact, tmp_path):
    """An instruction longer than max_length is found while tokenising: named, or skipped and counted."""
    src = bad_instruction_corpus(tmp_path / "q.jsonl")
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    with pytest.raises(RowError, match="q.jsonl line 18: item 0: instruction and template take"):
        run(artifact, [src], tmp_path / "o1", instruction_field="q")
    m = run(artifact, [src], tmp_path / "o2", instruction_field="q", on_error="skip")
    assert m["rows"] == 19 and m["skipped"] == 1 and m["skipped_rows"][0]["at"] == "q.jsonl line 18"
    ids, emb, _ = read_output(tmp_path / "o2")
    enc = l2v.load(artifact)
    ref = enc.encode([("Represent this text", r["text"]) for r in rows[:17]])
    assert np.abs(emb[:17] - ref).max() < 1e-5


def test_output_dtypes_follow_sentence_transformers(artifact, tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", corpus(40, seed=3))
    run(artifact, [src], tmp_path / "f32")
    _, f32, _ = read_output(tmp_path / "f32")
    run(artifact, [src], tmp_path / "f16", output_dtype="float16")
    _, f16, _ = read_output(tmp_path / "f16")
    assert f16.dtype == np.float16 and np.array_equal(f16, f32.astype(np.float16))
    m = run(artifact, [src], tmp_path / "i8", output_dtype="int8")
    _, i8, _ = read_output(tmp_path / "i8")
    ranges = int8_ranges(f32[:16])  # calibrated on window 0
    assert np.array_equal(np.array(m["int8_ranges"], dtype=np.float32), ranges)
    assert i8.dtype == np.int8 and np.array_equal(i8, quantize(f32, "int8", ranges))
    assert i8[:16].min() == -128 and i8[:16].max() == 127
    run(artifact, [src], tmp_path / "b", output_dtype="binary")
    _, b, mb = read_output(tmp_path / "b")
    assert b.shape == (40, 8) and mb["width"] == 8
    bits = np.unpackbits((b.astype(np.int16) + 128).astype(np.uint8), axis=1)
    assert np.array_equal(bits.astype(bool), f32 > 0)
    try:
        from sentence_transformers.quantization import quantize_embeddings
    except ImportError:
        return
    assert np.array_equal(i8, quantize_embeddings(f32, "int8", ranges=ranges))
    assert np.array_equal(b, quantize_embeddings(f32, "binary"))


def test_prompt_name_is_resolved_through_the_artifact(artifact, jsonl, tmp_path):
    with pytest.raises(InputError, match="--prompt-name 'query' is not a prompt of this artifact "
                                         "\\(available: none: this artifact's manifest has no prompts\\)"):
        run(artifact, [jsonl], tmp_path / "o", prompt_name="query")
    assert not (tmp_path / "o").exists()


def test_lock_held_by_a_live_run(artifact, tmp_path):
    from l2v.fileio import claim_dir

    src = write_jsonl(tmp_path / "c.jsonl", corpus(5))
    out = tmp_path / "out"
    out.mkdir()
    assert claim_dir(out / ".l2v-embed.lock")  # this (live) process holds it
    with pytest.raises(InputError, match=f"another l2v-embed \\(pid {os.getpid()}\\) is writing"):
        run(artifact, [src], out)


def test_cli_errors_are_one_line(artifact, tmp_path, capsys):
    src = write_jsonl(tmp_path / "c.jsonl", corpus(5))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    cases = [
        ([str(artifact), str(src), "--out", str(tmp_path / "busy")], "is not empty and holds no l2v-embed job"),
        ([str(artifact), str(src), "--out", str(tmp_path / "o"), "--workers", "2"], "--workers 2 needs --ray"),
        ([str(artifact), str(src), "--ray=nohost", "--out", str(tmp_path / "o")], "is not a Ray address"),
        ([str(artifact), str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")], "does not exist"),
        ([str(tmp_path), str(src), "--out", str(tmp_path / "o")], "is not an l2v artifact"),
        ([str(artifact), str(src), "--out", str(tmp_path / "o"), "--variant", "w4"], "w4"),
    ]
    for argv, message in cases:
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (argv, err)
    assert not (tmp_path / "o").exists() and os.listdir(tmp_path / "busy") == ["notes.txt"]
    from l2v.cli.embed import ray_flag_before_inputs

    assert ray_flag_before_inputs(["A", "--ray", str(src), "--out", "o"]) == ["A", "--ray=", str(src), "--out", "o"]
    assert ray_flag_before_inputs(["A", "x.jsonl", "--ray", "10.0.0.1:6379"])[-1] == "10.0.0.1:6379"
    assert cli([str(artifact), str(src), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("embedded 5 texts")


def test_max_length_truncates_like_load_and_is_part_of_the_job(artifact, tmp_path):
    rows = corpus(40, seed=3)
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    out = tmp_path / "out"
    m = run(artifact, [src], out, max_length=8)
    ids, emb, _ = read_output(out)
    ref = l2v.load(artifact, max_length=8).encode([r["text"] for r in rows])
    assert ids == [r["id"] for r in rows] and np.abs(emb - ref).max() < 1e-5
    full = l2v.load(artifact).encode([r["text"] for r in rows])
    assert np.abs(emb - full).max() > 1e-3  # the long rows really were cut
    assert m["max_length"] == 8 and m["tokens"] <= 8 * len(rows)
    with pytest.raises(JobChangedError, match="--max-length changed \\(8 -> 16\\)"):
        run(artifact, [src], out, max_length=16)
    with pytest.raises(InputError, match="--max-length 1 must be an integer >= 2"):
        run(artifact, [src], tmp_path / "o2", max_length=1)
    assert run(artifact, [src], tmp_path / "o3", max_length=10_000)["max_length"] == 64  # never above the artifact's
