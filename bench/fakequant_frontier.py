"""Where does 4-bit lose the neighbours? PyTorch fake quantization of an artifact's projections, per kind.

    python bench/fakequant_frontier.py ARTIFACT --data-dir /work/assets/data --docs 300 --max-tokens 32 \
        --mode all=4 --mode all=8,qkv=4 --mode all=8,o=4 --mode all=8,gate_up=4 --mode all=8,down=4 \
        --out bench/results/fakequant_qwen

A mode is a comma list of KIND[@FIRST-LAST]=BITS rules applied in order (later rules win): KIND is
all, qkv, o, gate_up, down or one projection (q, k, v, gate, up); BITS 4 or 8 quantises the weights
round-to-nearest per block of 32 input channels with ORT's symmetric scale (the signed extreme maps to
-2^(bits-1)), 32 leaves them fp32; activations stay fp32. Each mode's sentence embeddings of a stratified
BBC sample are compared with the unquantized model's (mean/min cosine, recall@1/@10 within the sample).
This is a diagnostic for choosing `w4:keep_8bit=...`, not a shipped variant. Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2v.model.arch import LAYER_PREFIX, LLAMA_UNITS  # noqa: E402  the decoder projections, as the ranking uses

# projection -> its unit (q -> qkv, gate -> gate_up, ...), from the architecture descriptor
KIND = {path.rsplit(".", 1)[1].removesuffix("_proj"): unit for unit, paths in LLAMA_UNITS.items() for path in paths}

BLOCK = 32


def parse_mode(mode: str) -> list[tuple[str, int, int, int]]:
    rules = []
    for item in mode.split(","):
        key, eq, bits = item.partition("=")
        kind, _, span = key.partition("@")
        if not eq or bits not in ("4", "8", "32") or kind not in {"all", *KIND, *KIND.values()}:
            raise SystemExit(f"--mode {mode!r}: bad rule {item!r} (KIND[@A-B]=4|8|32, KIND in all, qkv, o, "
                             "gate_up, down, q, k, v, gate, up)")
        lo, hi = (int(x) for x in span.split("-")) if span else (0, 10 ** 6)
        rules.append((kind, lo, hi, int(bits)))
    return rules


def bits_for(rules, layer: int, proj: str) -> int:
    bits = 32
    for kind, lo, hi, b in rules:
        if lo <= layer <= hi and kind in ("all", proj, KIND[proj]):
            bits = b
    return bits


def fake_quant(w, bits: int):
    """Round-to-nearest per block of 32 input channels (torch weight is [out, in])."""
    import torch

    o, i = w.shape
    wb = w.reshape(o, i // BLOCK, BLOCK)
    s = torch.gather(wb, -1, wb.abs().argmax(-1, keepdim=True)) / -(2 ** (bits - 1))
    s = torch.where(s.abs() < 1e-12, torch.full_like(s, 1e-12), s)
    return (torch.clamp(torch.round(wb / s), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1) * s).reshape(o, i)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("artifact")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--docs", type=int, default=300)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--mode", action="append", required=True)
    p.add_argument("--out", default="bench/results/fakequant")
    args = p.parse_args(argv)
    modes = {m: parse_mode(m) for m in args.mode}

    import torch

    from l2v.artifact import open_artifact
    from l2v.eval.corpora import load_bbc
    from l2v.model.arch import arch_of
    from l2v.quantize.context import Context
    from l2v.quantize.measure import fidelity

    root = Path(args.artifact)
    ctx = Context(open_artifact(root), [])
    model = ctx.torch_model
    arch = arch_of(model.config)
    corpus = load_bbc(args.data_dir).sample(args.docs)
    batches = ctx.batches(corpus.texts, args.max_tokens, batch=32)
    linears = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and arch.unit_of(name) and mod.in_features % BLOCK == 0:
            prefix, path = LAYER_PREFIX.match(name).groups()
            layer = int(prefix.rstrip(".").rpartition(".")[2])  # "backbone.layers.3." -> 3
            proj = path.rsplit(".", 1)[1].removesuffix("_proj")  # "mlp.down_proj" -> "down"
            linears[name] = (mod, layer, proj, mod.weight.data.clone())

    def run():
        with torch.no_grad():
            return torch.cat([model(**{k: torch.from_numpy(v) for k, v in b.items()}) for b in batches]).numpy()

    ref = run()
    rows = []
    try:
        for mode, rules in modes.items():
            t = time.perf_counter()
            n4 = n8 = total = 0
            for mod, layer, proj, w in linears.values():
                bits = bits_for(rules, layer, proj)
                mod.weight.data = w if bits == 32 else fake_quant(w, bits)
                n4 += w.numel() * (bits == 4)
                n8 += w.numel() * (bits == 8)
                total += w.numel()
            row = {"mode": mode, "weights_4bit": round(n4 / total, 3), "weights_8bit": round(n8 / total, 3),
                   **fidelity(ref, run()), "seconds": round(time.perf_counter() - t, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for mod, _, _, w in linears.values():
            mod.weight.data = w
    meta = {"artifact": str(root), "documents": len(corpus), "max_tokens": args.max_tokens,
            "rounding": "RTN, blocks of 32 input channels, ORT symmetric scale; activations fp32",
            "reference": "the same PyTorch model unquantized"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    cols = ["mode", "weights_4bit", "weights_8bit", "mean_cosine", "min_cosine", "recall@1", "recall@10"]
    lines = [f"Fake quantization of {root.name}: {len(corpus)} BBC documents, {args.max_tokens} tokens; "
             "recall within the sample against the unquantized model.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    Path(f"{out}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}.json, {out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
