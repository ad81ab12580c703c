"""`l2v-embed --ray` on a real local Ray cluster (one for the module, shut down at its end): the same
vectors and part files as the local executor, resuming what a local run left, joining a running cluster
by address from the CLI, and a bad row raised inside an actor reported as the row."""
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from embed_helpers import FAST, ROOT, bad_instruction_corpus, corpus, read_output, run, write_jsonl

from l2v.errors import RowError

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray (2 CPUs, small object store) started here; the tests' drivers join it by address.
    Ray's memory monitor would kill workers on a machine whose *other* processes use 95% of RAM."""
    saved = os.environ.get("RAY_memory_monitor_refresh_ms")
    os.environ["RAY_memory_monitor_refresh_ms"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 * 2 ** 20,
             logging_level=logging.ERROR)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_memory_monitor_refresh_ms", None)
        else:
            os.environ["RAY_memory_monitor_refresh_ms"] = saved


def test_ray_resumes_a_local_run_with_identical_vectors(cluster, artifact, jsonl, reference, tmp_path):
    """Windows 0, 3, 4, 9 done by the local executor (as a killed run leaves them); two Ray actors do the
    other 11: the result is byte-for-byte the uninterrupted local run."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(reference / ".l2v-embed-job.json", out)
    for k in (0, 3, 4, 9):
        shutil.copy(reference / f"part-{k:06d}.parquet", out)
    m = run(artifact, [jsonl], out, ray=True, workers=2)
    ids, emb, _ = read_output(out)
    ref_ids, ref_emb, ref_m = read_output(reference)
    assert ids == ref_ids and len(set(ids)) == 240
    assert np.array_equal(emb, ref_emb)
    assert m["run"]["executor"] == "ray" and m["run"]["windows_run"] == 11 and m["run"]["windows_kept"] == 4
    assert [(p["file"], p["rows"]) for p in m["parts"]] == [(p["file"], p["rows"]) for p in ref_m["parts"]]
    assert {k: m[k] for k in ("job", "rows", "tokens", "variant", "inputs")} == \
        {k: ref_m[k] for k in ("job", "rows", "tokens", "variant", "inputs")}


@pytest.mark.slow  # a `ray start --head` cluster of its own: ~2 min on 2 cores; resume across executors stays default
def test_cli_joins_the_cluster_int8_calibrated_on_window_0(cluster, artifact, tmp_path):
    """`l2v-embed --ray ADDRESS` from another process: window 0 runs first (its float32 vectors fix the
    int8 ranges), then the rest; the parts equal the local int8 run's."""
    src = write_jsonl(tmp_path / "c.jsonl", corpus(48, seed=5))
    run(artifact, [src], tmp_path / "local", output_dtype="int8")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    argv = [sys.executable, "-m", "l2v.cli.embed", str(artifact), str(src), "--out", str(tmp_path / "ray"),
            "--window", str(FAST["window"]), "--max-batch-tokens", str(FAST["max_batch_tokens"]),
            "--output-dtype", "int8", "--quiet", "--ray", cluster]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("embedded 48 texts")
    local, ray_out = read_output(tmp_path / "local"), read_output(tmp_path / "ray")
    assert local[0] == ray_out[0] and np.array_equal(local[1], ray_out[1]) and ray_out[1].dtype == np.int8
    assert ray_out[2]["int8_ranges"] == local[2]["int8_ranges"] and ray_out[2]["run"]["executor"] == "ray"


@pytest.mark.slow  # one more actor start (~14 s CPU); the error's pickling is in the default run (test_reader)
def test_a_bad_row_inside_an_actor_is_reported_as_the_row(cluster, artifact, tmp_path):
    src = bad_instruction_corpus(tmp_path / "q.jsonl")
    with pytest.raises(RowError, match="q.jsonl line 18: item 0: instruction and template take"):
        run(artifact, [src], tmp_path / "o", instruction_field="q", ray=True)
    assert not (tmp_path / "o" / "embed.json").exists()
