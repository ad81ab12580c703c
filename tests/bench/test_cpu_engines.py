"""bench/cpu_engines.py on the shared tiny llama artifact: real engines, a real child process per corpus pass,
real interleaved timing (no timing asserted); only the BBC corpus is replaced by a few local texts."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import cpu_engines  # noqa: E402

TEXTS = ["The bank raised its rates again.", "A striker scored twice in the final minutes of the match.",
         "Parliament debated the new budget until late.", "The phone maker unveiled a thinner model.",
         "Shares fell after the profit warning.", "The film won three awards at the festival."]


def _tiny_corpus(artifact, docs, max_tokens, data_dir):
    pre = artifact.preprocessor(max_tokens)
    rows = pre.rows(TEXTS)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    batches = [pre.pad([rows[i] for i in order[s:s + 4]]) for s in range(0, len(order), 4)]
    return TEXTS, cpu_engines.np.array(order), batches


def test_time_only_engine_is_timed_without_a_corpus_pass(tiny_llama_artifact, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_engines, "corpus_batches", _tiny_corpus)
    args = cpu_engines.parse(["--models", f"tiny={tiny_llama_artifact}", "--variants", "ort/fp32",
                              "--time-only", "hf/fp32", "--peers-python", "", "--batch-sizes", "1,2",
                              "--min-seconds", "0", "--max-reps", "3", "--max-tokens", "16"])
    m = cpu_engines.measure_model("tiny", Path(tiny_llama_artifact), args, tmp_path)
    hf, ort = m["rows"]["hf/fp32"], m["rows"]["ort/fp32"]
    assert "--time-only" in hf["note"] and "recall@10" not in hf and "peak_rss_mb" not in hf
    assert hf["b1"]["n"] == 3 and hf["b2"]["p50_ms"] > 0
    assert ort["recall@10"] == 1.0 and ort["peak_rss_mb"] > 0 and ort["b2"]["x_ort_fp32"] == 1.0
    assert "| hf/fp32 |" in cpu_engines.markdown({"meta": {"batch_sizes": [1, 2], "command": "x", "cpu": "c",
                                                          "cores": 2, "load_before": 0, "load_after": 0, "versions": {}},
                                                 "probe": {}, "models": {"tiny": m}})


def test_time_only_cannot_drop_the_reference(tiny_llama_artifact):
    with pytest.raises(SystemExit):
        cpu_engines.parse(["--models", f"tiny={tiny_llama_artifact}", "--time-only", "ort/fp32"])
