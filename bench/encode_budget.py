"""How good is the activation estimate that bounds one `encode` pass (l2v/runtime/budget.py)?

  python bench/encode_budget.py ARTIFACT [--shapes 1x512,1x1024,1x2048,4x1024,16x256]

For each batch shape, a fresh process opens the artifact's default ONNX variant, runs one small warm-up
batch, then one batch of that shape (random token ids, no padding), and reports how much its peak RSS
grew, next to `activation_bytes` from the manifest's model shape. Writes bench/results/encode_budget.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

CHILD = r"""
import json, resource, sys
import numpy as np
sys.path.insert(0, sys.argv[4])
import l2v
from l2v.text.batch import Batch
enc = l2v.load(sys.argv[1])
b, s = int(sys.argv[2]), int(sys.argv[3])
def batch(b, s):
    ids = np.random.default_rng(0).integers(10, 1000, (b, s)).astype(np.int64)
    return Batch(ids, np.ones((b, s), np.int64), np.ones((b, s), np.int64))
enc.run(batch(1, 8))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
enc.run(batch(b, s))
print(json.dumps({"grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact")
    p.add_argument("--shapes", default="1x512,1x1024,1x2048,4x1024,16x256")
    p.add_argument("--out", default=str(RESULTS / "encode_budget"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from l2v.artifact import read_manifest
    from l2v.runtime.budget import activation_bytes

    model = read_manifest(args.artifact).model
    rows = []
    for shape in args.shapes.split(","):
        b, s = map(int, shape.split("x"))
        r = subprocess.run([sys.executable, "-c", CHILD, args.artifact, str(b), str(s), str(REPO)],
                           capture_output=True, text=True, check=True)
        grew = json.loads(r.stdout.strip().splitlines()[-1])["grew_mb"]
        est = activation_bytes(model, b, s) / 2**20
        rows.append({"batch": b, "tokens": s, "rss_growth_mib": round(grew, 1), "estimate_mib": round(est, 1),
                     "estimate_over_growth": round(est / grew, 2) if grew > 0 else None})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    result = {"created": time.strftime("%Y-%m-%d %H:%M"), "artifact": args.artifact,
              "model": vars(model), "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# encode's activation estimate vs measured (`bench/encode_budget.py`, {result['created']})", "",
             f"Artifact `{args.artifact}` ({model.architecture}, hidden {model.hidden_size}, heads "
             f"{model.num_heads}, MLP {model.intermediate_size}), ONNX Runtime CPU fp32, one pass in a fresh "
             "process after a warm-up; growth of peak RSS (MiB).", "",
             "| batch × tokens | measured growth | estimate | estimate / measured |", "|---|---|---|---|"]
    lines += [f"| {r['batch']} × {r['tokens']} | {r['rss_growth_mib']} | {r['estimate_mib']} | "
              f"{r['estimate_over_growth']} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
