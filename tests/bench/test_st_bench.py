"""l2v-bench on a sentence-transformers artifact (Dense head, prompts): the HF baseline applies the head, so
every fp32 backend agrees with it; --prompt-name embeds the texts with the named prompt."""
import pytest

from fake_data import write_data_dir
from l2v.bench.config import BenchConfig
from l2v.bench.rows import select
from l2v.bench.run import run_benchmark
from l2v.bench.stats import TimingPolicy
from l2v.errors import InputError

FAST = TimingPolicy(warmup=1, floor_repeats=2, min_repeats=2, max_repeats=3, min_seconds=0.0, max_seconds=0.05)


def _config(art, root, **kw):
    return BenchConfig.quick_defaults(targets=[str(art)], batch_sizes=(1,), seq_lens=(8,), backends=("torch", "ort"),
                                      data_dir=str(write_data_dir(root)), out=str(root / "out"), eval_texts=12,
                                      eval_max_length=16, threads=1, progress=False, timing=FAST,
                                      probe_seconds=0.05, memory_probe=False, **kw)  # peak RSS: test_run_tiny


def test_bench_with_a_prompt_name_on_an_st_artifact(st_gemma, tmp_path):
    rows = run_benchmark(_config(st_gemma[1], tmp_path, prompt_name="query")).rows
    for backend in ("torch", "ort"):
        (cos,) = select(rows, "fidelity_cosine_min", backend=backend, precision="fp32")
        assert cos["reference"] == "hf/fp32" and cos["value"] > 0.9999
    assert select(rows, "lee_spearman", backend="hf")
    assert select(rows, "fidelity_cosine_min", backend="ort", precision="int8-smooth")
    assert {r["reason"] for r in select(rows, "skipped") if r.get("what") == "peak_rss"} == {"--no-memory-probe"}


def test_unknown_prompt_name_is_an_input_error(st_gemma, tmp_path):
    with pytest.raises(InputError, match="prompt_name 'nope'"):
        run_benchmark(_config(st_gemma[1], tmp_path, prompt_name="nope"))
