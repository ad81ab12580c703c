"""`l2v-package ARTIFACT --format triton --out REPO`: a Triton Inference Server model repository.

    REPO/<name>_tokenizer/  python backend: TEXT [+ INSTRUCTION] -> input_ids, attention_mask, pooling_mask
    REPO/<name>_encoder/    onnxruntime_onnx (the variant's ONNX files) or tensorrt_plan (a TensorRT engine)
    REPO/<name>/            ensemble: TEXT (TYPE_STRING) [+ INSTRUCTION] in, EMBEDDING (TYPE_FP32 [dim]) out
    REPO/README.md          the tritonserver command and a client example

The tokenizer runs l2v's own preprocessing (vendored into `<name>_tokenizer/1/l2v_text/`) on the artifact's
tokenizer and text spec, so its rows are those `l2v.load(dir).encode` builds. Configs are written as text
in Triton's protobuf text format; the tests parse every one with Triton's own `ModelConfig` message.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from l2v.errors import InputError

BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
INSTANCE_KINDS = ("cpu", "gpu")
TRT_KINDS = ("trt",)  # variant kinds whose main file is a serialised TensorRT engine


@dataclass
class TritonOptions:
    variant: str | None = None  # an ONNX (or TensorRT) variant; default: the artifact's default
    name: str | None = None  # model name in the repository (default: the artifact directory's name)
    kind: str = "cpu"  # instance group of the encoder: cpu | gpu
    instances: int = 1
    tokenizer_instances: int = 1
    max_batch_size: int = 32  # encode's default batch and the batch the quantization gate times
    delay_us: int = 5000  # the encoder's dynamic-batching queue delay
    threads: int | None = None  # ONNX Runtime intra-op threads per instance
    trt_engine: str | None = None  # a TensorRT engine built from the variant (trtexec), instead of ONNX
    copy: bool = False  # copy the weights instead of hard-linking them (same file system)

    def check(self) -> "TritonOptions":
        if self.kind not in INSTANCE_KINDS:
            raise InputError(f"--instance-kind {self.kind!r} must be one of {', '.join(INSTANCE_KINDS)}")
        for flag, v in (("--instances", self.instances), ("--tokenizer-instances", self.tokenizer_instances),
                        ("--max-batch-size", self.max_batch_size)):
            if v < 1:
                raise InputError(f"{flag} {v} must be >= 1")
        if self.delay_us < 0:
            raise InputError(f"--queue-delay-us {self.delay_us} must be >= 0")
        if self.name is not None and not _name_ok(self.name):
            raise InputError(f"--name {self.name!r} is not a usable Triton model name",
                             hint="letters, digits, '_' and '-', starting with a letter")
        if self.trt_engine is not None and not Path(self.trt_engine).is_file():
            raise InputError(f"--trt-engine {self.trt_engine!r} is not a file")
        return self


def _name_ok(name: str) -> bool:
    return bool(name) and name[0].isalpha() and all(c.isalnum() or c in "_-" for c in name)


# ---------------------------------------------------------------------- config.pbtxt text
def _instance_group(kind: str, count: int) -> str:
    return f"instance_group [ {{ count: {count} kind: {'KIND_GPU' if kind == 'gpu' else 'KIND_CPU'} }} ]"


def _seq_io(names, dtype: str = "TYPE_INT64") -> str:
    return ",\n".join(f'  {{ name: "{n}" data_type: {dtype} dims: [ -1 ] }}' for n in names)


_TEXT_INPUTS = '''input [
  { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "INSTRUCTION" data_type: TYPE_STRING dims: [ 1 ] optional: true }
]'''


def tokenizer_config(name: str, inputs, max_batch_size: int, instances: int) -> str:
    return f'''name: "{name}"
backend: "python"
max_batch_size: {max_batch_size}
{_TEXT_INPUTS}
output [
{_seq_io(inputs)}
]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
{_instance_group("cpu", instances)}
'''


def encoder_config(name: str, platform: str, filename: str, inputs, output: str, dim: int, o: TritonOptions) -> str:
    params = ""
    if platform == "onnxruntime_onnx" and o.threads:
        params = (f'parameters {{ key: "intra_op_thread_count" value: {{ string_value: "{o.threads}" }} }}\n'
                  'parameters { key: "inter_op_thread_count" value: { string_value: "1" } }\n')
    preferred = [b for b in (4, 8, 16, 32, 64) if b <= o.max_batch_size] or [o.max_batch_size]
    return f'''name: "{name}"
platform: "{platform}"
default_model_filename: "{filename}"
max_batch_size: {o.max_batch_size}
input [
{_seq_io(inputs)}
]
output [
  {{ name: "{output}" data_type: TYPE_FP32 dims: [ {dim} ] }}
]
dynamic_batching {{
  preferred_batch_size: [ {", ".join(map(str, preferred))} ]
  max_queue_delay_microseconds: {o.delay_us}
}}
{_instance_group(o.kind, o.instances)}
{params}'''


def ensemble_config(name: str, tok: str, enc: str, inputs, output: str, dim: int, max_batch_size: int) -> str:
    maps_tok = "\n".join(f'      output_map {{ key: "{n}" value: "{n}" }}' for n in inputs)
    maps_enc = "\n".join(f'      input_map {{ key: "{n}" value: "{n}" }}' for n in inputs)
    return f'''name: "{name}"
platform: "ensemble"
max_batch_size: {max_batch_size}
{_TEXT_INPUTS}
output [
  {{ name: "EMBEDDING" data_type: TYPE_FP32 dims: [ {dim} ] }}
]
ensemble_scheduling {{
  step [
    {{
      model_name: "{tok}"
      model_version: -1
      input_map {{ key: "TEXT" value: "TEXT" }}
      input_map {{ key: "INSTRUCTION" value: "INSTRUCTION" }}
{maps_tok}
    }},
    {{
      model_name: "{enc}"
      model_version: -1
{maps_enc}
      output_map {{ key: "{output}" value: "EMBEDDING" }}
    }}
  ]
}}
'''


# ---------------------------------------------------------------------- files
def _link_or_copy(src: Path, dst: Path, copy: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(src, dst)  # same file system: no second copy of the weights
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def buckets(max_length: int) -> list[int]:
    return [b for b in BUCKETS if b < max_length] + [max_length]


def encoder_files(art, o: TritonOptions) -> tuple[str, str | None, list]:
    """(platform, variant name or None, [(source path, path in the version dir)])."""
    if o.trt_engine:
        return "tensorrt_plan", None, [(Path(o.trt_engine), "model.plan")]
    name = o.variant or art.manifest.default_variant
    v = art.variant(name)
    if v.kind == "onnx":
        platform = "onnxruntime_onnx"
    elif v.kind in TRT_KINDS:
        platform = "tensorrt_plan"
    else:
        onnx = ", ".join(art.manifest.variants_of("onnx")) or "none"
        raise InputError(f"variant {name!r} is a {v.kind} variant, which Triton's onnxruntime and tensorrt backends "
                         "cannot run", hint=f"choose an ONNX variant with --variant ({onnx})")
    art.check(v)  # sizes of every file before linking them
    return platform, name, [(art.path(r.path), r.path) for r in v.files]


def write_triton_repo(artifact, out, options: TritonOptions | None = None, overwrite: bool = False) -> Path:
    """Write the repository; returns its path. Raises `L2VError` on bad input (nothing written then)."""
    from l2v.artifact import open_artifact
    from l2v.package.output import package_dir
    from l2v.package.vendor import write_text_package

    o = (options or TritonOptions()).check()
    art = open_artifact(artifact)
    m = art.manifest
    if art.preprocessor().views != 1:
        raise InputError("this artifact renders several prompts per text (MetaEOL); the Triton ensemble has no "
                         "step to average them", hint="serve it with l2v-serve")
    name = o.name or art.root.name.replace("-", "_").replace(".", "_")
    if not _name_ok(name):
        raise InputError(f"the artifact's name {art.root.name!r} is not a usable Triton model name", hint="pass --name")
    tok_name, enc_name = f"{name}_tokenizer", f"{name}_encoder"
    dim, output, inputs = int(m.graph.dim), m.graph.output, list(m.graph.inputs)
    platform, variant, files = encoder_files(art, o)
    source = {"artifact": str(art.root), "variant": variant, "trt_engine": o.trt_engine, "name": name}
    with package_dir(out, overwrite, "triton", source) as tmp:
        for src, rel in files:
            _link_or_copy(src, tmp / enc_name / "1" / rel, o.copy)
        filename = Path(files[0][1]).name if platform == "onnxruntime_onnx" else "model.plan"
        (tmp / enc_name / "config.pbtxt").write_text(
            encoder_config(enc_name, platform, filename, inputs, output, dim, o))
        tdir = tmp / tok_name / "1"
        art.tokenizer.save_pretrained(str(tdir / "tokenizer"))  # pad token and side as recorded; schema 1 too
        tdir.joinpath("model.py").write_text(
            resources.files("l2v.package").joinpath("templates/triton_model.py").read_text(encoding="utf-8"))
        write_text_package(tdir)
        meta = {"text": {**m.text, "pooling": m.graph.pooling}, "pad_token": m.tokenizer.pad_token,
                "padding_side": m.tokenizer.padding_side, "buckets": buckets(m.max_length), "inputs": inputs}
        (tdir / "l2v_text.json").write_text(json.dumps(meta, indent=1))
        (tmp / tok_name / "config.pbtxt").write_text(tokenizer_config(tok_name, inputs, o.max_batch_size,
                                                                      o.tokenizer_instances))
        (tmp / name / "1").mkdir(parents=True)
        (tmp / name / "config.pbtxt").write_text(ensemble_config(name, tok_name, enc_name, inputs, output, dim,
                                                                 o.max_batch_size))
        (tmp / "README.md").write_text(_readme(name, tok_name, enc_name, platform, dim, o.kind, m, output))
    return Path(out).expanduser().resolve()


def _readme(name, tok, enc, platform, dim, kind, m, output) -> str:
    gpu = "--gpus=1 " if kind == "gpu" else ""
    return f"""# Triton model repository for `{name}` (generated by l2v-package)

| model | backend | in | out |
|---|---|---|---|
| `{tok}` | python | TEXT (TYPE_STRING [1]), INSTRUCTION (TYPE_STRING [1], optional) | input_ids, attention_mask, pooling_mask (INT64 [-1]) |
| `{enc}` | {platform} | input_ids, attention_mask, pooling_mask | {output} (FP32 [{dim}]) |
| `{name}` | ensemble | TEXT, INSTRUCTION (optional) | EMBEDDING (FP32 [{dim}]) |

{m.model.architecture}, {m.graph.attention} attention, {m.graph.pooling} pooling, normalised in the graph:
{str(m.graph.normalize).lower()}; text preset `{m.preset}` (max_length {m.max_length}). The tokenizer runs l2v's
own preprocessing (vendored in `{tok}/1/l2v_text/`), so the vectors equal `l2v.load(artifact).encode`; an
empty INSTRUCTION means none. Each request is padded to a length bucket (16, 32, 64, ... up to max_length)
so that the encoder's dynamic batcher, which merges requests of one shape, can merge similar lengths.

## Run

The python backend needs `numpy` and `transformers` (tokenizer only, no torch) in Triton's Python:

```bash
docker run --rm {gpu}-p8000:8000 -p8001:8001 -p8002:8002 -v $PWD:/models nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
  bash -c "pip install transformers && tritonserver --model-repository=/models"
```

## Query

```python
import numpy as np, tritonclient.http as http
c = http.InferenceServerClient("localhost:8000")
t = http.InferInput("TEXT", [2, 1], "BYTES"); t.set_data_from_numpy(np.array([[b"hello"], [b"world"]], dtype=object))
emb = c.infer("{name}", [t]).as_numpy("EMBEDDING")   # float32 [2, {dim}]
```
"""
