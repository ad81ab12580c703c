"""The manifest `l2v.json`, typed: `Manifest` and `Variant` dataclasses with a schema version.

`Manifest.from_json(data, source)` checks every key and type and raises `ArtifactError` naming the bad
key and the file; `to_json()` writes schema 2. Schema 1 (written by l2v before the typed layer) is read
and upgraded in memory (its files have no recorded size or checksum). Vocabulary (docs/DESIGN.md):
a *variant* is one named way to run the artifact; its *kind* is the stored format that decides which
*backend* loads it (onnx: an ONNX graph for ONNX Runtime; torch: safetensors weights for PyTorch; bnb:
the torch weights quantized by bitsandbytes at load).
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field

from l2v.errors import ArtifactError, InputError

MANIFEST = "l2v.json"
SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
FORMAT = "l2v-artifact"
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class FileRecord:
    """One file of the artifact: a relative POSIX path inside it, its size and sha256 (None: not recorded,
    schema 1)."""
    path: str
    size: int | None = None
    sha256: str | None = None


@dataclass
class Variant:
    kind: str  # "onnx" | "torch" | "bnb" (see the module docstring); more kinds register in l2v.runtime
    dtype: str  # what the weights/compute are: fp32, fp16, bf16, int8, int4-weights, nf4, ...
    files: list[FileRecord] = field(default_factory=list)  # the main file first (graph, or weights)
    base: str | None = None  # the variant whose files this one runs on (bnb: "torch")
    quant: dict | None = None  # the quantization config (l2v.quantize.config), versioned
    validation: dict | None = None  # export's check against PyTorch (min/mean cosine, max abs diff)
    gate: dict | None = None  # the recall gate's figures against the reference variant
    calibration: dict | None = None  # the calibration texts' source and digest
    facts: dict = field(default_factory=dict)  # method facts: op counts, kept layers, timings, ...

    @property
    def main(self) -> FileRecord | None:
        return self.files[0] if self.files else None


@dataclass
class Graph:
    """What every variant's forward computes (the graph contract, docs/DESIGN.md)."""
    attention: str  # "bidirectional" | "causal"
    pooling: str
    normalize: bool
    dim: int
    inputs: list[str] = field(default_factory=lambda: ["input_ids", "attention_mask", "pooling_mask"])
    output: str = "sentence_embedding"
    opset: int = 18
    dynamic_axes: dict = field(default_factory=lambda: {"0": "batch", "1": "sequence"})
    head: list[dict] = field(default_factory=list)  # layers after pooling (l2v.model.head specs), in order


@dataclass
class ModelInfo:
    architecture: str
    hidden_size: int
    num_layers: int
    # recorded since the memory bound of `encode` (None in older artifacts: estimated from hidden_size)
    num_heads: int | None = None
    intermediate_size: int | None = None
    context: int | None = None  # the model's max_position_embeddings


@dataclass
class TokenizerInfo:
    pad_token: str
    pad_token_id: int
    padding_side: str
    pad_token_source: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    embedding_rows: int | None = None  # the model's input embedding rows: ids at or beyond are refused


@dataclass
class AdapterRecord:
    path: str
    sha256: str
    applied: str = "merged"  # or "unmerged": kept as a LoRA side branch (torch/adapter/)
    peft_type: str | None = None
    r: int | None = None
    lora_alpha: float | None = None
    target_modules: list | str | None = None
    base_model_name_or_path: str | None = None


@dataclass
class SentenceTransformersInfo:
    """What a sentence-transformers folder says about using its vectors (config_sentence_transformers.json and
    the Pooling module), kept for encode and for the integrations. Names as sentence-transformers spells them."""
    prompts: dict[str, str] = field(default_factory=dict)  # name -> text put before the input
    default_prompt_name: str | None = None
    include_prompt: bool = True  # Pooling: the prompt's tokens are pooled
    similarity_fn_name: str | None = None  # cosine | dot | euclidean | manhattan
    truncate_dim: int | None = None  # as the folder set it (the graph's dim is what the artifact computes)
    pooling_mode: str | None = None  # the Pooling mode as sentence-transformers names it
    modules: list[dict] = field(default_factory=list)  # modules.json: [{type, path}], in order
    version: str | None = None  # the sentence-transformers version that saved the folder


PROMPT_KEYS = ("prompts", "default_prompt_name", "include_prompt")  # TextSpec fields read from the ST info


@dataclass
class Manifest:
    source: dict
    model: ModelInfo
    graph: Graph
    tokenizer: TokenizerInfo
    text: dict  # l2v.text.TextSpec fields (its `pooling` comes from `graph.pooling`)
    variants: dict[str, Variant]
    default_variant: str
    adapters: list[AdapterRecord] = field(default_factory=list)
    preset: str | None = None
    files: list[FileRecord] = field(default_factory=list)  # shared by every variant: tokenizer, ...
    versions: dict = field(default_factory=dict)
    created: str | None = None
    timings: dict = field(default_factory=dict)
    sentence_transformers: SentenceTransformersInfo | None = None  # only for sentence-transformers sources
    schema_version: int = SCHEMA_VERSION
    format: str = FORMAT

    # ------------------------------------------------------------------ derived views
    @property
    def adapters_merged(self) -> bool:
        return all(a.applied == "merged" for a in self.adapters)

    @property
    def max_length(self) -> int:
        return int(self.text.get("max_length", 512))

    def text_spec(self, max_length: int | None = None):
        """The `TextSpec` that turns text into this artifact's graph inputs (optionally truncating shorter)."""
        from l2v.text import TextSpec

        st = self.sentence_transformers
        prompts = {k: getattr(st, k) for k in PROMPT_KEYS} if st is not None else {}
        spec = TextSpec.from_dict({**self.text, "pooling": self.graph.pooling, **prompts})
        if max_length is not None and max_length < spec.max_length:
            spec = dataclasses.replace(spec, max_length=max_length)
        return spec

    def variant(self, name: str | None = None) -> Variant:
        name = self.default_variant if name is None else name
        if name not in self.variants:
            raise InputError(f"variant {name!r} is not in this artifact", hint=f"available: {', '.join(self.variants)}")
        return self.variants[name]

    def variants_of(self, *kinds: str) -> list[str]:
        return [n for n, v in self.variants.items() if v.kind in kinds]

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        out = _dump(self)
        out["text"] = {k: v for k, v in out["text"].items() if k != "pooling" and k not in PROMPT_KEYS}
        head = {k: out.pop(k) for k in ("schema_version", "format")}
        return {**head, **out}

    @classmethod
    def from_json(cls, data, source: str = MANIFEST) -> "Manifest":
        if not isinstance(data, dict):
            raise ArtifactError(f"{source}: the manifest must be a JSON object, got {type(data).__name__}",
                                hint="the file is damaged; re-export the artifact")
        version = data.get("schema_version")
        if version not in READABLE_SCHEMAS:
            raise ArtifactError(f"{source}: schema_version {version!r} is not supported by this l2v",
                                hint=f"this l2v reads schemas {', '.join(map(str, READABLE_SCHEMAS))}")
        if version == 1:
            data = upgrade_v1(data, source)
        manifest = _load(cls, data, source, "")
        manifest.schema_version = SCHEMA_VERSION
        check(manifest, source)
        return manifest


def check(m: Manifest, source: str = MANIFEST) -> None:
    """Consistency beyond types: names, kinds, the default variant, file paths inside the artifact."""
    def bad(msg: str):
        raise ArtifactError(f"{source}: {msg}", hint="the manifest is damaged or was edited; re-export the artifact")

    if m.graph.attention not in ("bidirectional", "causal"):
        bad(f"graph.attention {m.graph.attention!r} must be 'bidirectional' or 'causal'")
    if m.graph.dim < 1:
        bad(f"graph.dim {m.graph.dim} must be a positive integer")
    if m.graph.dim > m.model.hidden_size:
        bad(f"graph.dim {m.graph.dim} exceeds model.hidden_size {m.model.hidden_size}")
    if "max_length" not in m.text:
        bad("required key 'text.max_length' is missing")
    try:
        m.text_spec()
    except InputError as e:
        bad(f"key 'text' is invalid: {e}")
    if not m.variants:
        bad("variants is empty")
    if m.default_variant not in m.variants:
        bad(f"default_variant {m.default_variant!r} is not one of the variants ({', '.join(m.variants)})")
    for name, v in m.variants.items():
        if not VARIANT_NAME.match(name):
            bad(f"variant name {name!r} is invalid")
        if v.base is not None and v.base not in m.variants:
            bad(f"variant {name!r} has base {v.base!r}, which is not a variant")
        if not v.files and v.base is None:
            bad(f"variant {name!r} lists no files (key 'variants.{name}.files')")
        for rec in v.files:
            check_relpath(rec.path, source, f"variants.{name}.files")
    for rec in m.files:
        check_relpath(rec.path, source, "files")


def check_relpath(path: str, source: str = MANIFEST, key: str = "files") -> str:
    """A file path of the artifact: relative, POSIX, no '..', no drive: never outside the artifact."""
    parts = str(path).replace("\\", "/").split("/")
    if (not path or str(path).startswith(("/", "~")) or ":" in parts[0] or any(p in ("..", "") for p in parts)):
        raise ArtifactError(f"{source}: {key} names {path!r}, a path outside the artifact",
                            hint="an artifact only refers to its own files; do not load manifests you do not trust")
    return str(path)


# ---------------------------------------------------------------------- typed (de)serialisation
def _dump(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _dump(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_dump(v) for v in obj]
    return obj


_HINTS: dict[type, dict] = {}


def _hints(cls) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _load(cls, data, source: str, where: str):
    if not isinstance(data, dict):
        raise ArtifactError(f"{source}: {where or 'the manifest'} must be an object, got {type(data).__name__}",
                            hint="the file is damaged; re-export the artifact")
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ArtifactError(f"{source}: required key {key!r} is missing",
                                    hint="the manifest is damaged or was edited; re-export the artifact")
            continue
        kwargs[f.name] = _value(hints[f.name], data[f.name], source, key)
    return cls(**kwargs)


def _value(tp, value, source: str, key: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _value(a, value, source, key)
            except ArtifactError as e:
                errors.append(e)
        raise errors[0] if errors else ArtifactError(f"{source}: key {key!r} must not be null")
    if dataclasses.is_dataclass(tp):
        return _load(tp, value, source, key)
    if origin is dict:
        _expect(isinstance(value, dict), value, "an object", source, key)
        vt = args[1] if args else typing.Any
        return {k: _value(vt, v, source, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        _expect(isinstance(value, list), value, "a list", source, key)
        vt = args[0] if args else typing.Any
        return [_value(vt, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is typing.Any:
        return value
    if tp is bool:
        _expect(isinstance(value, bool), value, "true or false", source, key)
    elif tp is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), value, "an integer", source, key)
    elif tp is float:
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), value, "a number", source, key)
        return float(value)
    elif tp is str:
        _expect(isinstance(value, str), value, "a string", source, key)
    elif tp is dict:
        _expect(isinstance(value, dict), value, "an object", source, key)
    elif tp is list:
        _expect(isinstance(value, list), value, "a list", source, key)
    return value


def _expect(ok: bool, value, what: str, source: str, key: str) -> None:
    if not ok:
        raise ArtifactError(f"{source}: key {key!r} must be {what}, got {value!r:.60}",
                            hint="the manifest is damaged or was edited; re-export the artifact")


# ---------------------------------------------------------------------- schema 1 (read only)
def upgrade_v1(d: dict, source: str) -> dict:
    """Schema 1 -> 2 in memory. Schema 1 kept graph facts at the top level, variants as {file, dtype, ...}
    (quantized ones with a `backend`), the torch weights under `torch` and bitsandbytes variants under
    `torch_variants`; it recorded no sizes or checksums of its own files."""
    try:
        export = d.get("export", {})
        variants = {}
        for name, v in d["variants"].items():
            v = dict(v)
            file = v.pop("file")
            files = [{"path": file}]
            if v.pop("external_data", False):
                files.append({"path": f"{file}.data"})
            v.pop("backend", None)
            variants[name] = _split_v1_variant(v, "onnx", files)
        torch_info = d.get("torch")
        if torch_info:
            tdir = torch_info["dir"]
            files = [{"path": f"{tdir}/model.safetensors"}, {"path": f"{tdir}/config.json"}]
            if torch_info.get("adapter"):
                files += [{"path": f"{tdir}/{torch_info['adapter']}/adapter_config.json"},
                          {"path": f"{tdir}/{torch_info['adapter']}/adapter_model.safetensors"}]
            variants["torch"] = {"kind": "torch", "dtype": torch_info.get("dtype", "fp32"), "files": files,
                                 "facts": {"adapter_dir": f"{tdir}/{torch_info['adapter']}"}
                                 if torch_info.get("adapter") else {}}
        for name, v in (d.get("torch_variants") or {}).items():
            v = dict(v)
            v.pop("file", None)
            v.pop("backend", None)
            variants[name] = {**_split_v1_variant(v, "bnb", []), "base": "torch"}
        tok = d["tokenizer"]
        return {
            "schema_version": SCHEMA_VERSION, "format": d.get("format", FORMAT), "source": d["source"],
            "adapters": d.get("adapters", []), "preset": d.get("preset"),
            "model": {"architecture": d["architecture"], "hidden_size": d["hidden_size"],
                      "num_layers": d["num_layers"]},
            "graph": {"attention": d["attention"], "pooling": d["pooling"], "normalize": d["normalize"],
                      "dim": d["dim"], "inputs": export.get("inputs", ["input_ids", "attention_mask", "pooling_mask"]),
                      "output": export.get("output", "sentence_embedding"), "opset": export.get("opset", 18),
                      "dynamic_axes": export.get("dynamic_axes", {"0": "batch", "1": "sequence"})},
            "tokenizer": tok, "text": d["text"], "variants": variants,
            "default_variant": d.get("default_variant", "fp32"), "versions": d.get("versions", {}),
            "created": d.get("created"), "timings": {"export_seconds_total": d.get("export_seconds_total")},
        }
    except (KeyError, TypeError, AttributeError) as e:
        raise ArtifactError(f"{source}: schema 1 manifest lacks or mistypes {e}",
                            hint="the manifest is damaged or was edited; re-export the artifact") from e


def _split_v1_variant(v: dict, kind: str, files: list) -> dict:
    known = {"dtype", "quant", "validation", "gate", "calibration"}
    out = {"kind": kind, "files": files, "dtype": str(v.get("dtype", "fp32"))}
    out.update({k: v[k] for k in known - {"dtype"} if k in v})
    out["facts"] = {k: val for k, val in v.items() if k not in known}
    return out
