"""`l2v-package ARTIFACT --format triton|hf --out DIR`: ship an artifact to Triton, TEI, vLLM, sentence-transformers."""
from __future__ import annotations

import argparse
import sys


def _prompt(s: str) -> tuple[str, str]:
    name, sep, text = s.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{s!r} is not NAME=INSTRUCTION")
    return name, text


def parse_args(argv=None) -> argparse.Namespace:
    from l2v.package import FORMATS

    p = argparse.ArgumentParser(prog="l2v-package", description=__doc__.splitlines()[0])
    p.add_argument("artifact", help="artifact directory (made by l2v-export)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="the repository / package directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package at --out")
    t = p.add_argument_group("triton")
    t.add_argument("--variant", default=None, help="the ONNX variant for the encoder (default: the artifact's)")
    t.add_argument("--name", default=None, help="model name in the repository (default: the artifact dir's)")
    t.add_argument("--instance-kind", default="cpu", choices=("cpu", "gpu"), help="where the encoder runs")
    t.add_argument("--instances", type=int, default=1, help="encoder instances")
    t.add_argument("--tokenizer-instances", type=int, default=1)
    t.add_argument("--max-batch-size", type=int, default=32, help="Triton max_batch_size of every model")
    t.add_argument("--queue-delay-us", type=int, default=5000, help="the encoder's dynamic-batching delay")
    t.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads per instance")
    t.add_argument("--trt-engine", default=None, help="a TensorRT engine of the variant, served as tensorrt_plan")
    t.add_argument("--copy", action="store_true", help="copy the weights instead of hard-linking them")
    h = p.add_argument_group("hf")
    h.add_argument("--prompt", action="append", type=_prompt, default=[], metavar="NAME=INSTRUCTION",
                   help="a named prompt for sentence-transformers (repeatable)")
    h.add_argument("--default-prompt", default=None, metavar="NAME")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from l2v.cli.common import run_main

    args = parse_args(argv)

    def job():
        if args.format == "triton":
            from l2v.package.triton import TritonOptions, write_triton_repo

            o = TritonOptions(variant=args.variant, name=args.name, kind=args.instance_kind, instances=args.instances,
                              tokenizer_instances=args.tokenizer_instances, max_batch_size=args.max_batch_size,
                              delay_us=args.queue_delay_us, threads=args.threads, trt_engine=args.trt_engine,
                              copy=args.copy)
            out = write_triton_repo(args.artifact, args.out, o, overwrite=args.overwrite)
            print(f"l2v-package: Triton model repository at {out} (see its README.md)")
        else:
            from l2v.package.hf import write_hf_package

            out = write_hf_package(args.artifact, args.out, dict(args.prompt), args.default_prompt,
                                   overwrite=args.overwrite)
            print(f"l2v-package: Hugging Face / sentence-transformers package at {out}")

    return run_main(job, args.debug)


if __name__ == "__main__":
    sys.exit(main())
