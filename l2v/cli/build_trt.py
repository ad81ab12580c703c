"""`l2v-build-trt DIR [--variant NAME ...]`: build the TensorRT engines of an artifact's trt-* variants from
their stored build plans, on this machine's GPU, validate them and record them in the manifest."""
from __future__ import annotations

import argparse
import sys

from l2v.cli.common import run_main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="l2v-build-trt", description="Build the TensorRT engines of an l2v artifact's "
                                "trt-* variants (made by l2v-export --trt) on this GPU, from their build plans.")
    p.add_argument("artifact", help="artifact directory")
    p.add_argument("--variant", action="append", default=[], metavar="NAME",
                   help="build only this trt variant (repeatable; default: every trt-* variant)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def job():
        from l2v.export.trt import build_engines

        def say(msg: str) -> None:
            if not args.quiet:
                print(f"[l2v-build-trt] {msg}", file=sys.stderr)

        for name, e in build_engines(args.artifact, args.variant or None, say).items():
            v = e["validation"]
            print(f"{name}: {e['engine']} ({e['engine_bytes'] / 2**20:.1f} MiB) built with TensorRT {e['tensorrt']} "
                  f"on {e['gpu']} (compute capability {e['compute_capability']}) in {e['build_seconds']} s; "
                  f"min cosine vs {v['reference']} {v['min_cosine']}, vs its graph on ORT {v['min_cosine_vs_graph_on_ort']}")

    return run_main(job, args.debug)


if __name__ == "__main__":
    sys.exit(main())
