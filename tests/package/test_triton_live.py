"""Slow: the repository's tokenizer model.py, unchanged, inside a real Triton core (PyTriton's bundled
tritonserver, python backend only); its outputs equal the runtime preprocessor's rows and the encoder on
them gives `encode`'s vectors. Needs a venv made from the system /usr/bin/python3.11 (3.11.2) with
nvidia-pytriton, tritonclient[http], numpy and transformers: L2V_PYTRITON_PYTHON (default
/work/venvs/pytriton/bin/python)."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from l2v.package.triton import TritonOptions, write_triton_repo

pytestmark = pytest.mark.slow
QUERIES = [{"texts": ["hello world", "A much longer sentence about embeddings, vectors and padding."]},
           {"texts": ["naïve café — 東京", "x", "The quick brown fox jumps over the lazy dog."],
            "instructions": ["Represent the query for retrieval:", "", "Classify the sentiment"]},
           {"texts": [" ".join(["word"] * 700)]}]  # past max_length and the 400-token document cut


def test_tokenizer_inside_real_triton(tiny_llama_artifact, tmp_path):
    import onnxruntime as ort

    import l2v

    py = os.environ.get("L2V_PYTRITON_PYTHON", "/work/venvs/pytriton/bin/python")
    if not Path(py).exists():
        pytest.skip(f"no PyTriton venv at {py} (made from the system /usr/bin/python3.11)")
    repo = write_triton_repo(tiny_llama_artifact, tmp_path / "repo", TritonOptions(name="tiny"))
    (tmp_path / "q.json").write_text(json.dumps(QUERIES))
    out = tmp_path / "out.npz"
    r = subprocess.run([py, str(Path(__file__).with_name("pytriton_side.py")), str(repo / "tiny_tokenizer"),
                        str(tmp_path / "q.json"), str(out)], capture_output=True, text=True, timeout=900)
    log = out.with_suffix(".log")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:] + (log.read_text()[-3000:] if log.exists() else "")
    got = np.load(out)
    enc = l2v.load(tiny_llama_artifact)
    sess = ort.InferenceSession(str(repo / "tiny_encoder" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    for qi, q in enumerate(QUERIES):
        ins = q.get("instructions") or [""] * len(q["texts"])
        items = [(i, t) if i.strip() else t for i, t in zip(ins, q["texts"])]
        arrays = {k: got[f"{qi}/{k}"] for k in ("input_ids", "attention_mask", "pooling_mask")}
        for row, (ids, pooled) in enumerate(enc.rows(items)):
            keep = arrays["attention_mask"][row].astype(bool)
            assert arrays["input_ids"][row][keep].tolist() == ids
            assert arrays["pooling_mask"][row][keep].tolist() == pooled
        np.testing.assert_allclose(sess.run(None, arrays)[0], enc.encode(items), atol=1e-4)
