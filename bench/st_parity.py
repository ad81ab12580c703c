"""Parity of exported sentence-transformers folders with sentence-transformers itself (the oracle).

  python bench/st_parity.py                       # every stack of tests/st_tiny.py STACKS
  python bench/st_parity.py --stacks qwen3-causal-last-eos-left --out bench/results/st_parity_qwen

For each stack: a tiny random-weight folder written file by file as the hub's folders are
(tests/st_tiny.py), `l2v.export_model(folder, dtype="fp16")` (cached in --work; --fresh re-exports), then
`quantize_artifact(art, QUANT, overwrite=True)` (int8-smooth with keep_sensitive=0: its default keeps the 4
most sensitive layers in fp32, i.e. all of a 2-layer model), then every variant (onnx fp32 / fp16 /
int8-dynamic / int8-smooth, and the torch backend) embeds the texts
with no prompt and with every named prompt, against `SentenceTransformer(folder).encode(texts,
prompt_name=...)`. Texts: tests/st_tiny.PARITY_TEXTS (mixed lengths, a CJK text, an empty string) and the
first --n-texts lines of l2v's packaged validation sentences. A row where both vectors are zero (an empty
pooled span: an empty text whose only tokens are an excluded prompt) counts as cosine 1.
Writes OUT.json and OUT.md. Needs sentence-transformers (pip install -e '.[test]').
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

VARIANTS = [("onnx", "fp32"), ("onnx", "fp16"), ("onnx", "int8-dynamic"), ("onnx", "int8-smooth"), ("torch", "torch")]
QUANT = ["int8-dynamic", "int8-smooth:keep_sensitive=0"]


def cosines(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    nr, ng = np.linalg.norm(ref, axis=1), np.linalg.norm(got, axis=1)
    cos = (ref * got).sum(1) / np.maximum(nr * ng, 1e-30)
    return np.where((nr < 1e-12) & (ng < 1e-12), 1.0, cos)


def texts(n: int) -> list[str]:
    from st_tiny import PARITY_TEXTS

    lines = resources.files("l2v.data").joinpath("validation.txt").read_text(encoding="utf-8").splitlines()
    return PARITY_TEXTS + [t for t in lines if t.strip()][:n]


def run_stack(name: str, kw: dict, work: Path, data: list[str], fresh: bool) -> list[dict]:
    import l2v
    from l2v.artifact import is_artifact
    from l2v.quantize import quantize_artifact
    from sentence_transformers import SentenceTransformer
    from st_tiny import save_st_folder

    folder, out = work / name / "st", work / name / "art"
    export_s = None
    if fresh or not is_artifact(out):
        shutil.rmtree(work / name, ignore_errors=True)
        save_st_folder(folder, **kw)
        t0 = time.perf_counter()
        l2v.export_model(str(folder), out, dtype="fp16", progress=False)
        export_s = round(time.perf_counter() - t0, 1)
    quantize_artifact(out, QUANT, overwrite=True, speed=False)
    st = SentenceTransformer(str(folder), device="cpu")
    prompt_names = [None, *st.prompts]
    refs = {p: st.encode(data, prompt_name=p) for p in prompt_names}
    rows = []
    for backend, variant in VARIANTS:
        enc = l2v.load(out, backend=backend) if backend == "torch" else l2v.load(out, variant=variant)
        cos = np.concatenate([cosines(refs[p], enc.encode(data, prompt_name=p)) for p in prompt_names])
        facts = enc.manifest.variants[enc.variant].facts
        rows.append({"stack": name, "variant": variant, "backend": backend, "min_cos": float(cos.min()),
                     "mean_cos": float(cos.mean()), "rows": int(cos.size), "prompts": len(prompt_names),
                     "quant_ops": facts.get("quant_ops"), "kept_fp32": facts.get("kept_fp32"),
                     "export_s": export_s})
        print(f"{name:32s} {variant:13s} min {cos.min():.7f} mean {cos.mean():.7f}", flush=True)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    variants = [v for _, v in VARIANTS]
    out = [f"# sentence-transformers parity (oracle: sentence-transformers {meta['sentence_transformers']})", "",
           f"{meta['texts']} texts x (no prompt + every named prompt) per stack; min / mean cosine of l2v vs "
           "`SentenceTransformer(folder).encode(texts, prompt_name=...)`. Tiny random-weight folders "
           "(tests/st_tiny.py). Machine load: " + meta["load"], "",
           "| stack | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for stack in dict.fromkeys(r["stack"] for r in rows):
        cells = []
        for v in variants:
            r = next(r for r in rows if r["stack"] == stack and r["variant"] == v)
            cells.append(f"{r['min_cos']:.7f} / {r['mean_cos']:.7f}")
        out.append(f"| {stack} | " + " | ".join(cells) + " |")
    ops = {r["stack"]: (r["quant_ops"], r["kept_fp32"]) for r in rows if r["variant"] == "int8-smooth"}
    dyn = {r["stack"]: r["quant_ops"] for r in rows if r["variant"] == "int8-dynamic"}
    out += ["", "Each cell: min / mean cosine. `torch`: the torch backend (padded engine). fp32 must reach 0.9999 "
            "(the issue's bound; the export's own validation asks 0.99999 of ONNX vs PyTorch). Quantized ops: "
            + "; ".join(f"{s}: int8-dynamic {dyn.get(s)}, int8-smooth {o} ({k} MatMuls kept fp32)"
                        for s, (o, k) in ops.items())]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    from st_tiny import STACKS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stacks", default=",".join(STACKS))
    p.add_argument("--n-texts", type=int, default=40)
    p.add_argument("--work", default="/tmp/l2v_st_parity")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "st_parity"))
    p.add_argument("--fresh", action="store_true", help="re-export even when --work holds the artifact")
    a = p.parse_args(argv)
    import os

    import sentence_transformers

    data = texts(a.n_texts)
    rows = []
    for name in a.stacks.split(","):
        rows += run_stack(name, STACKS[name], Path(a.work), data, a.fresh)
    meta = {"sentence_transformers": sentence_transformers.__version__, "texts": len(data),
            "load": "load average %.1f, %.1f, %.1f on %d CPUs" % (*os.getloadavg(), os.cpu_count()),
            "python": platform.python_version()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    Path(a.out + ".md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
