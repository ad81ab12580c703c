"""The Triton repository: every config.pbtxt parses with Triton's own ModelConfig protobuf and the models
fit together; the tokenizer model (run without l2v importable) gives the runtime preprocessor's rows, and
the encoder on its bucket-padded output gives `encode`'s vectors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from l2v.errors import InputError
from l2v.package.triton import TritonOptions, buckets, write_triton_repo

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")
from google.protobuf import text_format  # noqa: E402

TEXTS = ["hello world", "naïve café — 東京", "x", "word " * 300]
INSTR = ["", "Represent the query", "", "Retrieve"]


def parse_all(repo) -> dict:
    out = {}
    for p in sorted(repo.glob("*/config.pbtxt")):
        out[p.parent.name] = text_format.Parse(p.read_text(), pb.ModelConfig())  # unknown fields fail
        assert out[p.parent.name].name == p.parent.name
    return out


@pytest.fixture(scope="module")
def repo(tiny_llama_artifact, tmp_path_factory):
    o = TritonOptions(name="tiny", max_batch_size=16, threads=2)
    return write_triton_repo(tiny_llama_artifact, tmp_path_factory.mktemp("triton") / "repo", o)


def test_cpu_repository_parses_and_fits_together(repo, tiny_llama_artifact):
    from l2v.artifact import read_manifest

    g = read_manifest(tiny_llama_artifact).graph
    cfgs = parse_all(repo)
    assert set(cfgs) == {"tiny", "tiny_tokenizer", "tiny_encoder"}
    tok, enc, ens = cfgs["tiny_tokenizer"], cfgs["tiny_encoder"], cfgs["tiny"]
    assert tok.backend == "python" and enc.platform == "onnxruntime_onnx" and ens.platform == "ensemble"
    assert [i.name for i in tok.input] == ["TEXT", "INSTRUCTION"] and tok.input[1].optional
    assert tok.input[0].data_type == ens.input[0].data_type == pb.TYPE_STRING
    assert [o.name for o in tok.output] == [i.name for i in enc.input] == g.inputs
    assert all(o.data_type == pb.TYPE_INT64 for o in tok.output)
    assert ens.output[0].data_type == pb.TYPE_FP32 and list(ens.output[0].dims) == [g.dim]
    assert list(enc.output[0].dims) == [g.dim] and enc.output[0].name == g.output
    assert enc.HasField("dynamic_batching") and tok.HasField("dynamic_batching")
    assert list(enc.dynamic_batching.preferred_batch_size) == [4, 8, 16]
    assert enc.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    assert enc.max_batch_size == tok.max_batch_size == ens.max_batch_size == 16
    assert enc.parameters["intra_op_thread_count"].string_value == "2"
    steps = ens.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["tiny_tokenizer", "tiny_encoder"]
    assert dict(steps[0].output_map) == dict(steps[1].input_map)  # tokenizer outputs feed the encoder
    assert dict(steps[1].output_map) == {g.output: "EMBEDDING"}
    assert (repo / "tiny_encoder" / "1" / enc.default_model_filename).stat().st_size > 0
    assert (repo / "README.md").read_text().count("tritonserver --model-repository") == 1
    assert json.loads((repo / "l2v-package.json").read_text())["variant"] == "fp32"


def test_gpu_and_tensorrt_configs_parse(tiny_llama_artifact, tmp_path):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"\0")  # the packager only links the engine; Triton's parser checks the config
    o = TritonOptions(name="t", kind="gpu", instances=2, trt_engine=str(plan))
    enc = parse_all(write_triton_repo(tiny_llama_artifact, tmp_path / "repo", o))["t_encoder"]
    assert enc.platform == "tensorrt_plan" and enc.default_model_filename == "model.plan"
    assert enc.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU and enc.instance_group[0].count == 2


TOKENIZE = """
import json, sys
import numpy as np
sys.modules["l2v"] = None  # the vendored copy must not need l2v
sys.path.insert(0, sys.argv[1])
import model
pre, meta = model.load_preprocessor(sys.argv[1])
texts, instr = json.loads(sys.argv[2])
arrays = model.tokenize(pre, meta, [t.encode() for t in texts], [i.encode() for i in instr])
np.savez(sys.argv[3], **arrays)
"""


def test_tokenizer_model_equals_the_runtime_without_l2v(repo, tiny_llama_artifact, tmp_path):
    import onnxruntime as ort

    import l2v

    out = tmp_path / "rows.npz"
    r = subprocess.run([sys.executable, "-c", TOKENIZE, str(repo / "tiny_tokenizer" / "1"),
                        json.dumps([TEXTS, INSTR]), str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    arrays = dict(np.load(out))
    enc = l2v.load(tiny_llama_artifact)
    items = [(i, t) if i else t for t, i in zip(TEXTS, INSTR)]
    ref = enc.rows(items)
    width = arrays["input_ids"].shape[1]
    assert width in buckets(64) and width >= max(len(ids) for ids, _ in ref)
    for row, (ids, pooled) in enumerate(ref):
        keep = arrays["attention_mask"][row].astype(bool)
        assert arrays["input_ids"][row][keep].tolist() == ids
        assert arrays["pooling_mask"][row][keep].tolist() == pooled
    sess = ort.InferenceSession(str(repo / "tiny_encoder" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, arrays)[0], enc.encode(items), atol=1e-4)


def test_refusals(tiny_llama_artifact, tmp_path):
    with pytest.raises(InputError, match="variant 'torch' is a torch variant.*--variant \\(fp32\\)"):
        write_triton_repo(tiny_llama_artifact, tmp_path / "r", TritonOptions(variant="torch"))
    with pytest.raises(InputError, match="--instance-kind 'tpu'"):
        write_triton_repo(tiny_llama_artifact, tmp_path / "r", TritonOptions(kind="tpu"))
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob(".r*"))
