"""Do two artifacts embed alike? Each named variant of A and of B embeds the same texts (default: the
packaged validation sentences, alone and in mixed batches); prints and saves the max abs difference
and min cosine per variant.

    python bench/compare_artifacts.py A B [--variant fp32 --variant torch ...] [--texts FILE] [--out OUT]

Used to show that a refactor or a new export path gives the same vectors as before (A exported by the
old code, B by the new). Reads either artifact through the current `l2v.load` (schema 1 or 2).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--variant", action="append", default=None, help="default: every variant both have")
    p.add_argument("--texts", default=None, help="one text per line (default: l2v/data/validation.txt)")
    p.add_argument("--out", default=None, help="write OUT.json")
    args = p.parse_args(argv)

    import numpy as np

    import l2v
    from l2v.artifact import read_manifest
    from l2v.eval.metrics import cosine_rowwise
    from l2v.export.options import default_texts

    texts = (Path(args.texts).read_text().splitlines() if args.texts else default_texts())
    texts = [t for t in texts if t.strip()]
    ma, mb = read_manifest(args.a), read_manifest(args.b)
    names = args.variant or [n for n in ma.variants if n in mb.variants]
    rows = []
    for name in names:
        got = {}
        for side, path in (("a", args.a), ("b", args.b)):
            enc = l2v.load(path, variant=name)
            got[side] = np.concatenate([enc.encode(texts, batch_size=4), enc.encode(texts, batch_size=1)])
            enc.close()
        diff = float(np.abs(got["a"] - got["b"]).max())
        cos = float(cosine_rowwise(got["a"], got["b"]).min())
        rows.append({"variant": name, "rows": len(got["a"]), "max_abs_diff": diff, "min_cosine": cos,
                     "max_abs_value": float(np.abs(got["a"]).max())})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(f"{args.out}.json").write_text(json.dumps({"a": args.a, "b": args.b, "texts": len(texts),
                                                        "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
