"""Which text preset should the demo use? Every preset on the demo model (SmolLM2-135M-Instruct, no
adapters: an untrained embedder), scored on the demo's own sentences and on gensim Lee.

  python bench/demo_preset.py [--data /work/assets/data] [--work DIR] [--presets llm2vec,prompteol,...]

Demo sentences (`l2v.model.demo.SENTENCES`, three pairs of paraphrases): how many of the six sentences
have their partner as nearest neighbour, and the mean margin (cosine to the partner minus the largest
cosine to any other sentence). Lee: all 50 documents, Pearson of cosine vs the human similarity matrix.
BBC headlines (short texts like the demo's): the first line of each article, duplicates dropped,
--headlines per class (stratified, seed 0), 5-fold kNN accuracy (k=10, cosine).
Artifacts come from `bench/text_presets.ensure_artifact` (one real export per graph, cached in --work).
Writes bench/results/demo_preset.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "results"
PRESETS = ("llm2vec", "prompteol", "pcot", "ke", "metaeol", "e5")


def pair_scores(emb: np.ndarray) -> dict:
    """Sentences 2k and 2k+1 are paraphrases: nearest-neighbour hits and the mean margin."""
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    partner = np.arange(len(sim)) ^ 1
    hits = int((sim.argmax(1) == partner).sum())
    to_partner = sim[np.arange(len(sim)), partner]
    sim[np.arange(len(sim)), partner] = -np.inf
    margin = float((to_partner - sim.max(1)).mean())
    return {"pairs_found": hits, "of": len(emb), "mean_margin": margin}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="/work/assets/SmolLM2-135M-Instruct.Q4_1.gguf")
    p.add_argument("--data", default="/work/assets/data")
    p.add_argument("--work", default=str(Path.home() / ".cache" / "l2v" / "bench-presets"))
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--headlines", type=int, default=100, help="BBC headlines per class (5 classes)")
    p.add_argument("--out", default=str(RESULTS / "demo_preset"))
    args = p.parse_args(argv)

    import l2v
    from l2v.eval.corpora import Corpus, load_bbc, load_lee
    from l2v.eval.metrics import human_similarity_correlation, knn_accuracy
    from l2v.model.demo import PRESET, SENTENCES
    from text_presets import ensure_artifact

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    lee = load_lee(args.data)
    bbc = load_bbc(args.data)
    heads = Corpus("bbc-headlines", [t.splitlines()[0].strip() for t in bbc.texts], bbc.labels)
    heads = heads.deduplicated().sample(args.headlines * 5, seed=0)
    rows, timings = [], {}
    t_start = time.perf_counter()
    for preset in args.presets.split(","):
        art = ensure_artifact("smollm2", args.model, preset, work, timings)
        enc = l2v.load(art)
        t0 = time.perf_counter()
        row = {"preset": preset, **pair_scores(enc.encode(SENTENCES)),
               "lee_pearson": human_similarity_correlation(enc.encode(lee.texts, batch_size=16),
                                                           lee.similarity)["pearson"],
               "headlines_knn": knn_accuracy(enc.encode(heads.texts), heads.labels, k=10),
               "encode_seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    best = max(rows, key=lambda r: (r["pairs_found"], r["headlines_knn"]))
    result = {"created": time.strftime("%Y-%m-%d %H:%M"), "model": args.model, "rows": rows,
              "best": best["preset"], "demo_uses": PRESET, "timings": timings, "headlines": len(heads),
              "total_seconds": round(time.perf_counter() - t_start, 1), "load_average_end": os.getloadavg()}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# The demo's preset (from `bench/demo_preset.py`, {result['created']})", "",
             "SmolLM2-135M-Instruct, no adapters (an untrained embedder), ONNX fp32 on CPU. Demo sentences: "
             "three paraphrase pairs (`l2v.model.demo.SENTENCES`); 'pairs found' counts sentences whose nearest "
             "neighbour is their partner; margin = cosine to the partner minus the largest other cosine. BBC "
             f"headlines: {len(heads)} article titles (stratified, seed 0), 5-fold kNN accuracy (k=10). Lee: all "
             "50 documents, Pearson vs the human matrix.", "",
             "| preset | pairs found | mean margin | BBC headlines kNN | Lee Pearson | encode s (shared CPU) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['pairs_found']}/{r['of']} | {r['mean_margin']:+.3f} | {r['headlines_knn']:.3f} | "
              f"{r['lee_pearson']:.3f} | {r['encode_seconds']} |" for r in rows]
    lines += ["", f"Best on short texts (pairs found, then headlines): **{best['preset']}**; the demo uses "
              f"`{PRESET}`."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
