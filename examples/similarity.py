"""Embed a few real sentences with an exported artifact and print their cosine-similarity matrix.

usage: python examples/similarity.py ARTIFACT_DIR [--backend onnx|torch]
"""
import argparse

import numpy as np

import l2v

SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs a song on an acoustic guitar.",
    "The central bank raised interest rates again.",
    "Borrowing costs went up after the rate decision.",
    "The recipe needs two eggs and a cup of flour.",
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("artifact")
    p.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    args = p.parse_args()
    enc = l2v.load(args.artifact, backend=args.backend)
    print(enc)
    emb = enc.encode(SENTENCES, normalize=True)
    sim = emb @ emb.T
    print("\ncosine similarity")
    for i, s in enumerate(SENTENCES):
        print(f"[{i}] " + " ".join(f"{v:6.3f}" for v in sim[i]) + f"  {s}")
    off = sim - np.eye(len(sim)) * 2
    best = off.argmax(1)
    print("\nnearest neighbour of each sentence:", ", ".join(f"{i}->{j}" for i, j in enumerate(best)))


if __name__ == "__main__":
    main()
