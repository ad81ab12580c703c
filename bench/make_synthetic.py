"""Deterministic synthetic checkpoints in the real Hugging Face layouts, written shard by shard.

    python bench/make_synthetic.py llama3-8b --layers 4 --out /data/llama3-8b-L4 [--adapters]

Writes `config.json`, `model-0000k-of-0000n.safetensors` shards (bf16) with `model.safetensors.index.json`,
`generation_config.json`, a tokenizer (a small BPE trained in code, as in tests/tiny.py: its ids are a
subset of the model's vocabulary), and with `--adapters` an LLM2Vec-layout adapter pair next to the model:
`OUT-mntp/` (adapter_config.json + adapter_model.safetensors + config.json + tokenizer) and `OUT-supervised/`
(adapter files only), LoRA r=16 on all seven projections, keys `base_model.model.layers.{i}.<module>.lora_A.weight`.

Nothing is ever held whole: each safetensors header is computed from the shapes, then every tensor is
generated in row blocks of at most BLOCK elements and appended to the file. Values depend only on
(seed, tensor name): the same command writes the same bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCK = 1 << 24  # elements generated at once (64 MiB of fp32 scratch)
SHARD_BYTES = 5 * 10**9  # HF's default max_shard_size ("5GB")
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

SHAPES = {
    # Meta-Llama-3-8B: config.json of the release
    "llama3-8b": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=4096,
                      intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                      num_hidden_layers=32, rope_theta=500000.0, rms_norm_eps=1e-5, max_position_embeddings=8192,
                      bos_token_id=128000, eos_token_id=128001, tie_word_embeddings=False),
    # Mistral-7B-v0.1 (sliding_window 4096 as released; LLM2Vec's Mistral adapters are on v0.2-instruct-like shapes)
    "mistral-7b": dict(model_type="mistral", architectures=["MistralForCausalLM"], hidden_size=4096,
                       intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                       num_hidden_layers=32, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=32768,
                       sliding_window=4096, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
    # Qwen2-7B: q/k/v biases, untied head
    "qwen2-7b": dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=3584,
                     intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                     num_hidden_layers=28, rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=131072,
                     sliding_window=131072, max_window_layers=28, use_sliding_window=False,
                     bos_token_id=151643, eos_token_id=151643, tie_word_embeddings=False),
    # small shapes for tests (same code paths, seconds to write)
    "tiny-llama": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=64,
                       intermediate_size=160, num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                       num_hidden_layers=2, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=256,
                       bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
    "tiny-qwen2": dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=64,
                       intermediate_size=160, num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                       num_hidden_layers=2, rope_theta=10000.0, rms_norm_eps=1e-6, max_position_embeddings=256,
                       use_sliding_window=False, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                       pad_token_id=511),  # a pad id at the vocabulary's end, as Qwen2.5's GGUF files set it
    "mid-llama": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=1024,
                      intermediate_size=3584, num_attention_heads=16, num_key_value_heads=4, vocab_size=32000,
                      num_hidden_layers=4, rope_theta=500000.0, rms_norm_eps=1e-5, max_position_embeddings=8192,
                      bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
}


@dataclass(frozen=True)
class Spec:
    """One tensor to write: name, shape and the distribution it is drawn from."""
    name: str
    shape: tuple[int, ...]
    kind: str  # "normal" (mean 0, std) | "norm" (1 + std * N) | "lora_b"
    std: float

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def config_dict(shape: str, layers: int | None) -> dict:
    cfg = dict(SHAPES[shape])
    if layers is not None:
        cfg["num_hidden_layers"] = layers
        if "max_window_layers" in cfg:
            cfg["max_window_layers"] = layers
    cfg.update(hidden_act="silu", initializer_range=0.02, attention_dropout=0.0, torch_dtype="bfloat16",
               use_cache=True)
    if cfg["model_type"] == "llama":
        cfg.update(attention_bias=False, mlp_bias=False, pretraining_tp=1, rope_scaling=None)
    return cfg


def projection_shapes(cfg: dict) -> dict[str, tuple[int, int]]:
    """module -> (out_features, in_features), as nn.Linear stores `weight`."""
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    head = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * head, cfg["num_key_value_heads"] * head
    return {"self_attn.q_proj": (q, h), "self_attn.k_proj": (kv, h), "self_attn.v_proj": (kv, h),
            "self_attn.o_proj": (h, q), "mlp.gate_proj": (i, h), "mlp.up_proj": (i, h), "mlp.down_proj": (h, i)}


def model_tensors(cfg: dict) -> list[Spec]:
    """The *ForCausalLM state dict, in the order HF writes it (per layer, then norm and head)."""
    h, v = cfg["hidden_size"], cfg["vocab_size"]
    std = cfg["initializer_range"]
    bias = cfg["model_type"] == "qwen2"
    specs = [Spec("model.embed_tokens.weight", (v, h), "normal", std)]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        specs.append(Spec(p + "input_layernorm.weight", (h,), "norm", 0.05))
        for mod, (out, inp) in projection_shapes(cfg).items():
            specs.append(Spec(p + mod + ".weight", (out, inp), "normal", std))
            if bias and mod.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                specs.append(Spec(p + mod + ".bias", (out,), "normal", std))
        specs.append(Spec(p + "post_attention_layernorm.weight", (h,), "norm", 0.05))
    specs.append(Spec("model.norm.weight", (h,), "norm", 0.05))
    if not cfg.get("tie_word_embeddings"):
        specs.append(Spec("lm_head.weight", (v, h), "normal", std))
    return specs


def _rng(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def _blocks(spec: Spec, seed: int, dtype, align: int = 1):
    """Yield the tensor's values as consecutive flat blocks (row-major), already in `dtype`; each block a
    multiple of `align` elements (whole rows)."""
    rng = _rng(seed, spec.name)
    left = spec.numel
    while left:
        n = min(left, max(BLOCK // align, 1) * align)
        x = rng.standard_normal(n, dtype=np.float32)
        x *= spec.std
        if spec.kind == "norm":
            x += 1.0
        yield x.astype(dtype)
        left -= n


ST_DTYPES = {"bfloat16": "BF16", "float32": "F32", "float16": "F16"}


def write_safetensors(path: Path, specs: list[Spec], seed: int, dtype: str, metadata: dict | None = None) -> int:
    """Write one safetensors file tensor by tensor; returns bytes written."""
    import ml_dtypes

    np_dtype = {"bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float16": np.float16}[dtype]
    item = np.dtype(np_dtype).itemsize
    header, offset = {}, 0
    for s in specs:
        n = s.numel * item
        header[s.name] = {"dtype": ST_DTYPES[dtype], "shape": list(s.shape), "data_offsets": [offset, offset + n]}
        offset += n
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for s in specs:
            for block in _blocks(s, seed, np_dtype):
                block.tofile(fh)
    tmp.rename(path)
    return 8 + len(raw) + offset


def write_model(out: Path, shape: str, layers: int | None, seed: int = 0, shard_bytes: int = SHARD_BYTES) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_dict(shape, layers)
    specs = model_tensors(cfg)
    shards, cur, size = [], [], 0
    for s in specs:
        n = s.numel * 2
        if cur and size + n > shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(s)
        size += n
    shards.append(cur)
    weight_map, total = {}, 0
    for k, group in enumerate(shards, 1):
        name = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(out / name, group, seed, "bfloat16", {"format": "pt"})
        total += sum(s.numel * 2 for s in group)
        weight_map.update({s.name: name for s in group})
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"]}, indent=2))
    write_tokenizer(out)
    return cfg


def write_tokenizer(out: Path) -> None:
    """The tiny trained BPE of tests/tiny.py (vocab 400, ids < every vocab here), saved as the model's."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny import make_tokenizer

    make_tokenizer().save_pretrained(str(out))


def lora_tensors(cfg: dict, r: int) -> list[Spec]:
    """LLM2Vec layout (saved from the bidirectional base model): no extra 'model.' in the key."""
    specs = []
    for layer in range(cfg["num_hidden_layers"]):
        for mod, (out, inp) in projection_shapes(cfg).items():
            key = f"base_model.model.layers.{layer}.{mod}"
            specs.append(Spec(key + ".lora_A.weight", (r, inp), "normal", 1.0 / np.sqrt(inp)))
            specs.append(Spec(key + ".lora_B.weight", (out, r), "normal", 0.01))
    return specs


def write_adapter(out: Path, cfg: dict, base_dir: Path, seed: int, r: int = 16, alpha: int = 32,
                  mntp: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(out / "adapter_model.safetensors", lora_tensors(cfg, r), seed, "float32")
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": None, "base_model_name_or_path": str(base_dir), "r": r,
        "lora_alpha": alpha, "lora_dropout": 0.05, "target_modules": list(TARGETS), "bias": "none",
        "fan_in_fan_out": False, "use_rslora": False, "use_dora": False, "modules_to_save": None,
        "init_lora_weights": True, "inference_mode": True, "layers_to_transform": None,
        "rank_pattern": {}, "alpha_pattern": {}}, indent=2))
    if mntp:  # LLM2Vec MNTP repos carry the base config and tokenizer too
        (out / "config.json").write_text((base_dir / "config.json").read_text())
        write_tokenizer(out)


GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def gguf_name(hf: str) -> str:
    """llama.cpp's tensor name for a Llama state-dict key."""
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    _, _, layer, rest = hf.split(".", 3)
    module, _, suffix = rest.rpartition(".")
    return f"blk.{layer}.{GGUF_NAMES[module]}.{suffix}"


def write_gguf(path: Path, shape: str, layers: int | None, qtype: str, seed: int = 0) -> dict:
    """A llama-architecture GGUF with `qtype` (Q4_0 / Q8_0) matrices and F32 norms, quantized and written
    in row blocks (never a whole tensor in fp32); the tokenizer metadata is the embedded SmolLM2 GGUF's
    (49,152 tokens: ids below every vocabulary here). Same values as the safetensors checkpoint of the
    same (shape, layers, seed) before quantization."""
    import gguf
    from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType as Q, quants

    from l2v.model.demo import demo_gguf_path

    cfg = config_dict(shape, layers)
    if cfg["model_type"] != "llama":
        raise SystemExit(f"--gguf writes llama-architecture files; {shape} is {cfg['model_type']}")
    q = getattr(Q, qtype)
    block, type_size = gguf.GGML_QUANT_SIZES[q]
    src = GGUFReader(str(demo_gguf_path()))
    w = GGUFWriter(str(path.with_name(path.name + ".partial")), "llama")
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    w.add_name(f"synthetic {shape} L{cfg['num_hidden_layers']} {qtype}")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(h)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(h // heads)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type({"Q4_0": 2, "Q8_0": 7}[qtype])
    for key, field in src.fields.items():
        if key.startswith("tokenizer."):
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            w.add_key_value(key, field.contents(), vtype, sub_type=sub)
    specs = model_tensors(cfg)
    for s in specs:
        if s.kind == "norm":
            w.add_tensor_info(gguf_name(s.name), s.shape, np.dtype(np.float32), s.numel * 4)
        else:
            rows, cols = s.shape
            nbytes = rows * cols // block * type_size
            w.add_tensor_info(gguf_name(s.name), (rows, cols // block * type_size), np.dtype(np.uint8), nbytes,
                              raw_dtype=q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    head = h // heads
    for s in specs:  # as GGUFWriter.write_tensor_data, one row block (whole heads) at a time
        w.tensors[0].pop(gguf_name(s.name))
        w.write_padding(fout, fout.tell())
        nbytes = 0
        cols = s.shape[-1]
        rope = s.name.endswith(("q_proj.weight", "k_proj.weight"))
        for x in _blocks(s, seed, np.float32, align=cols * head):
            if rope:  # llama.cpp's convert permutes q/k rows per head; readers (transformers, ours) undo it
                x = x.reshape(-1, 2, head // 2, cols).swapaxes(1, 2)
            if s.kind != "norm":
                x = quants.quantize(x.reshape(-1, cols), q)
            x.tofile(fout)
            nbytes += x.nbytes
        w.write_padding(fout, nbytes)
    w.close()
    path.with_name(path.name + ".partial").rename(path)
    return cfg


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--adapters", action="store_true", help="also write OUT-mntp/ and OUT-supervised/")
    ap.add_argument("--shard-gb", type=float, default=5.0)
    ap.add_argument("--gguf", choices=["Q4_0", "Q8_0"], default=None,
                    help="write OUT as one llama GGUF file of this type instead of a safetensors directory")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.gguf:
        cfg = write_gguf(out, args.shape, args.layers, args.gguf, args.seed)
        print(json.dumps({"out": str(out), "layers": cfg["num_hidden_layers"], "bytes": out.stat().st_size}))
        return
    cfg = write_model(out, args.shape, args.layers, args.seed, int(args.shard_gb * 1e9))
    if args.adapters:
        write_adapter(out.with_name(out.name + "-mntp"), cfg, out, args.seed + 1, mntp=True)
        write_adapter(out.with_name(out.name + "-supervised"), cfg, out, args.seed + 2, mntp=False)
    print(json.dumps({"out": str(out), "layers": cfg["num_hidden_layers"]}))


if __name__ == "__main__":
    main()
