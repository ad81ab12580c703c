"""Every text preset on a real model, embedded from the exported artifact: quality on Lee and BBC.

  python bench/text_presets.py                                   # SmolLM2, every preset, defaults below
  python bench/text_presets.py --models smollm2,qwen --presets llm2vec,prompteol
  python bench/text_presets.py --merge-check                     # + merged vs unmerged second adapter

Artifacts: one real `l2v.export_model` per distinct graph (bidirectional + mean: llm2vec; causal + last
position: e5, prompteol, pcot, ke, metaeol; eos_token and last_token pooling are the same graph op). The
other presets' artifacts hard-link that graph and carry the manifest export_model writes for them
(`build_text_spec`), marked `derived_from`. Exports are cached in --work; their time is reported apart.
Every vector comes from `l2v.load(dir).encode(...)` (ONNX Runtime, CPU).
Lee: all 50 documents, Pearson / Spearman of cosine vs the human similarity matrix (upper triangle).
BBC: --bbc-per-class articles per class (stratified, seed 0), each cut to its first --bbc-words
words (headline + lead); 5-fold kNN (k=10, cosine) and logistic-regression accuracy (l2v.eval).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = {"smollm2": "/work/assets/SmolLM2-135M-Instruct.Q4_1.gguf",
          "qwen": "/work/assets/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"}
# (row label, preset, use instructions, text mode); instructions as LLM2Vec / E5 use for STS and
# classification; the compat row (not in the default list) shows what llm2vec 0.2.3's pre-processing gives
ROWS = [("llm2vec", "llm2vec", False, "clean"), ("llm2vec+instr", "llm2vec", True, "clean"),
        ("e5", "e5", False, "clean"), ("e5+instr", "e5", True, "clean"), ("prompteol", "prompteol", False, "clean"),
        ("pcot", "pcot", False, "clean"), ("ke", "ke", False, "clean"), ("metaeol", "metaeol", False, "clean"),
        ("llm2vec+instr-compat", "llm2vec", True, "compat")]
DEFAULT_ROWS = [r[0] for r in ROWS[:8]]
INSTRUCTIONS = {"lee": "Retrieve semantically similar text", "bbc": "Classify the given news article by topic"}
RESULTS = Path(__file__).resolve().parent / "results"


def graph_key(preset: str) -> str:
    from l2v.text.presets import resolve_export

    _, pooling, causal = resolve_export(preset, None, None, None)
    return f"{'causal' if causal else 'bi'}-{'last' if pooling in ('last_token', 'eos_token') else pooling}"


def ensure_artifact(model: str, path: str, preset: str, work: Path, timings: dict, mode: str = "clean") -> Path:
    """A real export for the first preset of each graph; the others derive their manifest from it."""
    import l2v
    from l2v.artifact import read_manifest
    from l2v.export.pipeline import default_texts
    from l2v.text.presets import build_text_spec, resolve_export

    base = work / f"{model}-{graph_key(preset)}"
    if not (base / "l2v.json").is_file():
        t0 = time.perf_counter()
        l2v.export_model(path, base, preset=preset, texts=default_texts()[:6], torch_weights=False,
                         overwrite=True, progress=True)
        timings[f"export {base.name}"] = round(time.perf_counter() - t0, 1)
    manifest = read_manifest(base)
    if manifest.preset == preset and mode == "clean":
        return base
    out = work / f"{model}-{preset}{'-compat' if mode == 'compat' else ''}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in base.iterdir():
        if f.is_file() and f.name != "l2v.json":
            try:
                os.link(f, out / f.name)
            except OSError:
                shutil.copy2(f, out / f.name)
    name, pooling, causal = resolve_export(preset, None, None, None)
    spec = build_text_spec(name, pooling, manifest.max_length, model_type=manifest.model.architecture,
                           text_mode=mode, names=[manifest.source["name"]])
    if manifest.graph.attention != ("causal" if causal else "bidirectional"):
        raise RuntimeError(f"{base} has the wrong attention for {preset}")
    manifest.preset, manifest.graph.pooling = name, pooling
    manifest.text = {k: v for k, v in spec.to_dict().items() if k != "pooling"}
    manifest.timings["derived_from"] = str(base)  # same graph and files (hard links), other text recipe
    (out / "l2v.json").write_text(json.dumps(manifest.to_json(), indent=2))
    return out


def load_data(args):
    from l2v.eval.corpora import load_bbc, load_lee

    lee = load_lee(args.data)
    bbc = load_bbc(args.data).deduplicated().sample(args.bbc_per_class * 5, seed=0)
    bbc_texts = [" ".join(t.split()[: args.bbc_words]) for t in bbc.texts]
    return lee, bbc, bbc_texts


def evaluate(enc, items_lee, items_bbc, lee, bbc, batch_size: int) -> dict:
    from l2v.eval.metrics import human_similarity_correlation, knn_accuracy, logreg_accuracy

    out = {}
    for name, items in (("lee", items_lee), ("bbc", items_bbc)):
        tokens = sum(len(ids) for ids, _ in enc.preprocessor.rows(items))
        t0 = time.perf_counter()
        emb = enc.encode(items, batch_size=batch_size)
        dt = time.perf_counter() - t0
        out[f"{name}_seconds"], out[f"{name}_tokens"] = round(dt, 1), tokens
        if name == "lee":
            out.update({f"lee_{k}": v for k, v in human_similarity_correlation(emb, lee.similarity).items()})
        else:
            out["bbc_knn"] = knn_accuracy(emb, bbc.labels, k=10)
            out["bbc_logreg"] = logreg_accuracy(emb, bbc.labels)
    return out


def span_diagnostics(tokenizer_dir: Path, lee, args) -> dict:
    """Tokenisation only: how often llm2vec's count rule pools a different span than the offsets do, and
    how many BBC articles doc_max_length truncates."""
    from transformers import AutoTokenizer

    from l2v.eval.corpora import load_bbc
    from l2v.text import Preprocessor
    from l2v.text.presets import build_text_spec

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    pres = {m: Preprocessor(tok, build_text_spec("llm2vec", "mean", 512, text_mode=m)) for m in ("clean", "compat")}
    bbc = load_bbc(args.data).deduplicated()
    out = {}
    for name, texts, instr in (("lee", lee.texts, INSTRUCTIONS["lee"]), ("bbc", bbc.texts, INSTRUCTIONS["bbc"])):
        for with_instr in (False, True):
            items = [(instr, t) for t in texts] if with_instr else texts
            a, b = (pres[m].rows(items) for m in ("clean", "compat"))
            diff = sum(sum(pa) != sum(pb) or ia != ib for (ia, pa), (ib, pb) in zip(a, b))
            out[f"{name}{'+instr' if with_instr else ''}_span_differs"] = f"{diff}/{len(items)}"
        n = sum(pres["clean"].doc_tokens(t) > 400 for t in texts)
        out[f"{name}_over_doc_max_length_400"] = f"{n}/{len(texts)}"
    return out


def random_adapters(model, out: Path, seeds=(1, 2), r: int = 16, alpha: int = 32, std: float = 0.02) -> list[str]:
    """Random LoRA adapters on every projection (peft layout), one per seed: stand-ins for MNTP + SimCSE."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    dirs = []
    for seed in seeds:
        pm = get_peft_model(copy.deepcopy(model), LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                                             lora_dropout=0.0))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_" in n:
                    p.copy_(torch.randn(p.shape, generator=g) * std)
        pm.save_pretrained(str(out / f"a{seed}"))
        dirs.append(str(out / f"a{seed}"))
    return dirs


def merge_check(path: str, lee) -> dict:
    """SmolLM2 + two random LoRA adapters (r=16): the artifact's fp32 merge of both vs the reference's
    usual loading (first merged, second unmerged), in fp32 and bf16; cosine over 16 Lee documents."""
    import copy
    import tempfile

    import torch
    from peft import PeftModel

    from l2v.model.adapters import merge_adapters
    from l2v.model.encoder import EmbeddingModel
    from l2v.model.load import load
    from l2v.model.source import resolve_model
    from l2v.text import Preprocessor
    from l2v.text.presets import build_text_spec

    src = resolve_model(path)
    loaded = load(src)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = random_adapters(loaded.model, Path(tmp))
        pre = Preprocessor(loaded.tokenizer, build_text_spec("llm2vec", "mean", 512))
        batch = {k: torch.from_numpy(v) for k, v in pre.batch(lee.texts[:16]).items()}

        def run(dtype, second_merged):
            m = copy.deepcopy(loaded.model).to(dtype)
            m, _ = merge_adapters(m, dirs if second_merged else dirs[:1])
            if not second_merged:
                m = PeftModel.from_pretrained(m, dirs[1]).get_base_model()
            with torch.no_grad():
                return EmbeddingModel(m.eval(), "mean")(**batch).double().numpy()

        ours = run(torch.float32, True)
        out = {}
        for label, dtype, merged in (("fp32 unmerged 2nd", torch.float32, False),
                                     ("bf16 unmerged 2nd", torch.bfloat16, False),
                                     ("bf16 merged both", torch.bfloat16, True)):
            v = run(dtype, merged)
            cos = (v * ours).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(ours, axis=1)
            out[label] = {"min_cosine_vs_fp32_merged": float(cos.min()),
                          "max_abs_diff": float(np.abs(v - ours).max()), "max_abs": float(np.abs(ours).max())}
    return out


def markdown(result: dict) -> str:
    lines = [f"# Text presets on untrained models (from `bench/text_presets.py`, {result['created']})", "",
             "Settings: " + result["settings_line"], "",
             "| model | recipe | Lee Pearson | Lee Spearman | BBC kNN acc | BBC logreg acc | encode s (Lee+BBC) "
             "| tokens |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['row']} | {r['lee_pearson']:.3f} | {r['lee_spearman']:.3f} | "
                     f"{r['bbc_knn']:.3f} | {r['bbc_logreg']:.3f} | {r['lee_seconds'] + r['bbc_seconds']:.0f} | "
                     f"{r['lee_tokens'] + r['bbc_tokens']} |")
    lines += ["", "Pre-processing diagnostics (tokenisation only, llm2vec preset, clean vs compat):", ""]
    lines += [f"- {m}: {k} = {v}" for m, d in result["diagnostics"].items() for k, v in d.items()]
    if result.get("merge_check"):
        lines += ["", "Merged vs unmerged second adapter (SmolLM2 + two random r=16 LoRA adapters, 16 Lee docs, "
                  "vs the artifact's fp32 merge of both):", ""]
        lines += [f"- {k}: min cosine {v['min_cosine_vs_fp32_merged']:.7f}, max |diff| {v['max_abs_diff']:.2e} "
                  f"(max |value| {v['max_abs']:.1f})" for k, v in result["merge_check"].items()]
    lines += ["", "Timings (s, wall, shared CPU): " + ", ".join(f"{k} {v}" for k, v in result["timings"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="smollm2", help="comma list of smollm2, qwen or NAME=PATH")
    p.add_argument("--presets", default=",".join(DEFAULT_ROWS),
                   help=f"row labels to run, from {', '.join(r[0] for r in ROWS)}")
    p.add_argument("--data", default="/work/assets/data")
    p.add_argument("--work", default=str(Path.home() / ".cache" / "l2v" / "bench-presets"))
    p.add_argument("--bbc-per-class", type=int, default=20)
    p.add_argument("--bbc-words", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--merge-check", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "presets"))
    args = p.parse_args(argv)

    import l2v

    t_start = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    lee, bbc, bbc_texts = load_data(args)
    wanted = args.presets.split(",")
    rows, timings, diagnostics = [], {}, {}
    models = dict(m.split("=", 1) if "=" in m else (m, MODELS[m]) for m in args.models.split(","))
    for model, path in models.items():
        for label, preset, with_instr, mode in [r for r in ROWS if r[0] in wanted]:
            art = ensure_artifact(model, path, preset, work, timings, mode)
            enc = l2v.load(art)
            items_lee = [(INSTRUCTIONS["lee"], t) for t in lee.texts] if with_instr else lee.texts
            items_bbc = [(INSTRUCTIONS["bbc"], t) for t in bbc_texts] if with_instr else bbc_texts
            r = {"model": model, "row": label, "preset": preset, "artifact": str(art),
                 "derived": "derived_from" in enc.manifest.timings,
                 **evaluate(enc, items_lee, items_bbc, lee, bbc, args.batch_size)}
            print(json.dumps(r), flush=True)
            rows.append(r)
        arts = sorted(work.glob(f"{model}-*/l2v.json"))
        if arts:
            diagnostics[model] = span_diagnostics(arts[0].parent, lee, args)
    result = {
        "created": time.strftime("%Y-%m-%d %H:%M"),
        "settings": {"models": models, "bbc_per_class": args.bbc_per_class,
                     "bbc_words": args.bbc_words, "batch_size": args.batch_size, "lee_docs": len(lee),
                     "bbc_docs": len(bbc), "instructions": INSTRUCTIONS, "backend": "onnx fp32 CPU",
                     "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg(),
                     "python": platform.python_version()},
        "settings_line": (f"ONNX fp32 on CPU ({os.cpu_count()} shared cores); Lee: all {len(lee)} docs; BBC: "
                          f"{len(bbc)} articles ({args.bbc_per_class}/class, stratified, seed 0, duplicates "
                          f"dropped) cut to their first {args.bbc_words} words; kNN k=10 cosine and "
                          "standardised logistic regression, 5-fold stratified; max_length 512; "
                          f"batch {args.batch_size}; '+instr' rows use Lee: '{INSTRUCTIONS['lee']}', "
                          f"BBC: '{INSTRUCTIONS['bbc']}'"),
        "rows": rows, "diagnostics": diagnostics, "timings": timings,
    }
    result["versions"] = json.loads((Path(rows[0]["artifact"]) / "l2v.json").read_text())["versions"] if rows else {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for final in (False, True):
        if final and args.merge_check:
            t0 = time.perf_counter()
            result["merge_check"] = merge_check(MODELS["smollm2"], lee)
            timings["merge check"] = round(time.perf_counter() - t0, 1)
        timings["total"] = round(time.perf_counter() - t_start, 1)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
