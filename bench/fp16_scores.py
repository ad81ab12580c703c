"""Where a 16-bit forward loses accuracy, in PyTorch: fp32 vs fp16 with the attention in three precisions.

    python bench/fp16_scores.py MODEL [--name fp16_scores] [--texts 18]

MODEL is any source l2v-export takes (a GGUF file, an HF directory). The encoder is l2v's own (bidirectional,
mean pooling), on the first N built-in validation texts padded into one batch. Rows:
- `fp16`: the whole model in fp16 (transformers' sdpa);
- `fp16, attention core fp32`: q and k rounded to fp16 as computed, then QK^T / softmax / PV in fp32;
- `fp16, fp32 scores (l2v)`: also the q/k projections (so RoPE) in fp32, what `l2v.model.precision` exports.
Per row: min / mean cosine of the pooled vectors against fp32, and the mean relative error of the hidden state
after the first, middle and last decoder layer. Writes bench/results/NAME.{json,md}. Cosines do not depend on
load; the seconds printed do.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def forward(encoder, batch, layers):
    import torch

    hidden = []
    hooks = [layer.register_forward_hook(lambda m, i, o: hidden.append((o[0] if isinstance(o, tuple) else o).float()))
             for layer in layers]
    try:
        with torch.no_grad():
            return encoder(**batch).float(), hidden
    finally:
        for h in hooks:
            h.remove()


def rel_err(ref, got, mask) -> float:
    a, b = ref[mask], got[mask]
    return float(((a - b).norm(dim=-1) / a.norm(dim=-1)).mean())


def run(args) -> dict:
    import torch

    from l2v.export.options import default_texts
    from l2v.model.encoder import EmbeddingModel
    from l2v.model.load import load
    from l2v.model.precision import _attention_function, fp32_scores
    from l2v.model.source import resolve_model

    loaded = load(resolve_model(args.model), "fp32", attn_implementation="sdpa")
    texts = default_texts()[:args.texts]
    enc = loaded.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
             "pooling_mask": enc["attention_mask"]}
    mask = enc["attention_mask"].bool()
    ref_model = EmbeddingModel(loaded.model).eval()
    n = len(loaded.model.layers)
    picks = sorted({0, n // 2, n - 1})
    ref, ref_h = forward(ref_model, batch, loaded.model.layers)
    half = torch.nn.Module.half(copy.deepcopy(ref_model))  # GGUF-loaded models refuse .half() itself
    rows = []
    for mode in ("fp16", "fp16, attention core fp32", "fp16, fp32 scores (l2v)"):
        t = time.perf_counter()
        if mode == "fp16, fp32 scores (l2v)":
            with fp32_scores(half, "fp16"):
                got, hid = forward(half, batch, half.backbone.layers)
        elif mode == "fp16, attention core fp32":
            half.config._attn_implementation = _attention_function("sdpa")
            try:
                got, hid = forward(half, batch, half.backbone.layers)
            finally:
                half.config._attn_implementation = "sdpa"
        else:
            got, hid = forward(half, batch, half.backbone.layers)
        cos = torch.nn.functional.cosine_similarity(ref, got)
        rows.append({"mode": mode, "min_cos": round(float(cos.min()), 6), "mean_cos": round(float(cos.mean()), 6),
                     "rel_err": {f"layer {i}": round(rel_err(ref_h[i], hid[i], mask), 5) for i in picks},
                     "seconds": round(time.perf_counter() - t, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return {"model": str(args.model), "texts": len(texts), "tokens": list(enc["input_ids"].shape),
            "python": platform.python_version(), "torch": torch.__version__, "rows": rows}


def save(res: dict, name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1))
    picks = list(res["rows"][0]["rel_err"])
    lines = [f"model `{res['model']}`, {res['texts']} texts padded to {res['tokens']}, l2v's bidirectional "
             f"mean-pooling encoder, PyTorch {res['torch']} CPU; reference: the same model in fp32.", "",
             "| forward | min cos | mean cos | " + " | ".join(f"rel. error after {p}" for p in picks) + " |",
             "|---|---|---|" + "---|" * len(picks)]
    for r in res["rows"]:
        lines.append(f"| {r['mode']} | {r['min_cos']} | {r['mean_cos']} | "
                     + " | ".join(str(r["rel_err"][p]) for p in picks) + " |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--name", default="fp16_scores")
    ap.add_argument("--texts", type=int, default=18)
    args = ap.parse_args(argv)
    save(run(args), args.name)


if __name__ == "__main__":
    main()
