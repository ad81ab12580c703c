"""`l2v-quantize DIR --quant ...` (also `python -m l2v.quantize`), and the flags it shares with `l2v-export`."""
from __future__ import annotations

import argparse
import sys

from l2v.quantize.registry import NEEDS

QUANT_HELP = (f"add a quantized variant (repeatable): {', '.join(NEEDS)}; options as METHOD:key=value,... "
              "(e.g. w4:block_size=64)")


def add_quant_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quant", action="append", default=[], metavar="METHOD", help=QUANT_HELP)
    p.add_argument("--min-recall", type=float, default=None, metavar="R",
                   help="refuse (exit 3, nothing written) a variant whose recall@10 vs fp32 is below R")
    p.add_argument("--calib", default=None, metavar="FILE",
                   help="calibration texts: one per line or JSONL with 'text' (default: built-in real text)")
    p.add_argument("--eval", default=None, metavar="FILE",
                   help="gate texts, different from --calib (default: built-in real text)")


def add_trt_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trt", action="store_true",
                   help="add TensorRT variants trt-<precision>: a strongly typed, TensorRT-ready ONNX graph (Q/DQ for "
                   "int8/fp8) + a build plan, gated like --quant; engines are built where TensorRT and a GPU exist "
                   "(else: l2v-build-trt DIR later)")
    p.add_argument("--trt-precision", action="append", default=[], choices=["fp16", "bf16", "int8", "fp8"],
                   help="with --trt (repeatable; default fp16)")
    p.add_argument("--trt-shapes", default=None, metavar="SPEC",
                   help="with --trt: optimization profiles batch=MIN:OPT:MAX,seq=MIN:OPT:MAX[;...] "
                   "(default batch=1:16:64,seq=1:128:MAX_LENGTH)")


def trt_specs(args) -> list:
    """--trt [--trt-precision P ...] [--trt-shapes S] as quantization configs (for l2v-quantize)."""
    from l2v.errors import InputError
    from l2v.quantize.config import trt_config

    if not args.trt:
        if args.trt_precision or args.trt_shapes:
            raise InputError("--trt-precision/--trt-shapes without --trt are not used", hint="add --trt")
        return []
    return [trt_config(p, args.trt_shapes) for p in dict.fromkeys(args.trt_precision or ["fp16"])]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="l2v-quantize",
                                description="Add quantized variants to an existing l2v artifact, each gated on "
                                "recall against its fp32 graph; nothing is written unless every one passes.")
    p.add_argument("artifact", help="artifact directory (made by l2v-export)")
    add_quant_flags(p)
    add_trt_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace variants of the same name")
    p.add_argument("--no-speed", action="store_true", help="skip the batch-1/batch-32 timing")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv=None) -> int:
    from l2v.cli.common import run_main

    args = parser().parse_args(argv)

    def job():
        import json

        from l2v.errors import InputError
        from l2v.quantize.api import quantize_artifact

        methods = list(args.quant) + trt_specs(args)
        if not methods:
            raise InputError("no --quant given", hint="e.g. --quant int8-smooth --quant w4 (or --trt)")
        entries = quantize_artifact(args.artifact, methods, calib=args.calib, eval=args.eval,
                                    min_recall=args.min_recall, overwrite=args.overwrite,
                                    speed=not args.no_speed, progress=not args.quiet)
        for name, e in entries.items():
            print(json.dumps({"variant": name, **{k: e.gate[k] for k in
                                                  ("mean_cosine", "min_cosine", "recall@1", "recall@10")}}))

    return run_main(job, args.debug)


if __name__ == "__main__":
    sys.exit(main())
