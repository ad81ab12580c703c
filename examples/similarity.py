"""Embed three pairs of paraphrases with an exported artifact, print their cosine-similarity matrix and
whether each sentence's nearest neighbour is its partner.

usage: python examples/similarity.py ARTIFACT_DIR [--backend onnx|torch]

With the demo artifact (`l2v-export --demo`): SmolLM2-135M-Instruct without LLM2Vec adapters is an
untrained embedder, so expect some misses: the demo shows that the export works, not retrieval quality.
"""
import argparse

import numpy as np

import l2v
from l2v.model.demo import NOTE, SENTENCES, SHA256


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", help="artifact directory (l2v-export ... --out DIR)")
    p.add_argument("--backend", default="onnx", choices=["onnx", "torch"], help="runtime (default onnx)")
    args = p.parse_args()
    enc = l2v.load(args.artifact, backend=args.backend)
    print(enc)
    if enc.manifest.source.get("sha256") == SHA256 and not enc.manifest.adapters:
        print(f"note: {NOTE}")
    emb = enc.encode(SENTENCES, normalize=True)
    sim = emb @ emb.T
    print("\ncosine similarity (sentences 2k and 2k+1 are paraphrases)")
    for i, s in enumerate(SENTENCES):
        print(f"[{i}] " + " ".join(f"{v:6.3f}" for v in sim[i]) + f"  {s}")
    best = (sim - np.eye(len(sim)) * 2).argmax(1)
    hits = sum(int(j) == i ^ 1 for i, j in enumerate(best))
    print("\nnearest neighbour of each sentence:", ", ".join(f"{i}->{j}" for i, j in enumerate(best)))
    print(f"pairs found: {hits}/{len(SENTENCES)} sentences have their paraphrase as nearest neighbour")


if __name__ == "__main__":
    main()
