"""`l2v-embed ARTIFACT INPUT... --out DIR`: flags -> `l2v.embed.embed_corpus`. Nothing else happens here."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from l2v.cli.common import run_main

RAY_ADDRESS = re.compile(r"^(auto|local|ray://\S+|[A-Za-z0-9_.\-\[\]:]+:\d+)$")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="l2v-embed", description="Embed a corpus with an l2v artifact into Parquet files (id, embedding): "
        "streaming, resumable after any interruption, on this machine or on Ray Data (--ray).")
    p.add_argument("artifact", help="artifact directory (made by l2v-export)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="JSONL, Parquet, CSV or plain-text files (one text a line), directories, globs")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (new, empty, or this job's own)")
    p.add_argument("--text-field", default="text", metavar="F", help="the text field/column (default: text)")
    p.add_argument("--id-field", default=None, metavar="F",
                   help="the id field/column (default: id; a file without it is numbered by row, as text files are)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--instruction-field", default=None, metavar="F", help="a per-row instruction field/column")
    g.add_argument("--instruction", default=None, metavar="TEXT", help="one instruction for every row")
    p.add_argument("--prompt-name", default=None, metavar="NAME", help="a prompt named in the artifact's manifest")
    p.add_argument("--variant", default=None, metavar="V", help="the artifact variant (default: its default)")
    p.add_argument("--max-batch-tokens", type=int, default=8192, metavar="N",
                   help="padded tokens per batch (rows x longest row; default 8192)")
    p.add_argument("--window", type=int, default=1024, metavar="N",
                   help="rows sorted by length together and written as one part (default 1024)")
    p.add_argument("--output-dtype", default="float32", choices=["float32", "float16", "int8", "binary"],
                   help="int8/binary as sentence-transformers' quantize_embeddings (int8 ranges from window 0)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise (when the graph does not already)")
    p.add_argument("--on-error", default="fail", choices=["fail", "skip"],
                   help="a bad row or unreadable file: stop (default) or skip it (counted in the manifest)")
    p.add_argument("--restart", action="store_true", help="discard DIR's earlier job and start over")
    p.add_argument("--format", default="auto", choices=["auto", "jsonl", "parquet", "csv", "text"],
                   help="input format (default: from each file's suffix)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray Data: a local Ray started for the job, or join the cluster at ADDRESS "
                        "(host:port, ray://host:port, auto); needs pip install 'l2v-export[ray]'")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="encoder actors with --ray (default 1)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="intra-op threads per encoder (default: all cores; with --ray: cores / workers)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cuda: ONNX Runtime's CUDA EP (with --ray: one GPU per actor, shared if fewer)")
    p.add_argument("--max-length", type=int, default=None, metavar="N",
                   help="truncate each text to N tokens (default and upper bound: the artifact's max_length)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def ray_flag_before_inputs(argv: list[str]) -> list[str]:
    """`--ray` takes an optional ADDRESS, so `--ray data.jsonl` would read the input as an address: a word
    after `--ray` that is not a Ray address (or is an existing path) stays an INPUT."""
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        nxt = out[i + 1]
        if a == "--ray" and not nxt.startswith("-") and (not RAY_ADDRESS.match(nxt) or Path(nxt).exists()):
            out[i] = "--ray="
    return out


def main(argv=None) -> int:
    args = parser().parse_args(ray_flag_before_inputs(sys.argv[1:] if argv is None else argv))

    def job():
        from l2v.embed import EmbedOptions, embed_corpus
        from l2v.errors import InputError

        if args.ray and not RAY_ADDRESS.match(args.ray):
            raise InputError(f"--ray {args.ray!r} is not a Ray address", hint="host:port, ray://host:port or auto")
        embed_corpus(EmbedOptions(
            args.artifact, args.inputs, args.out, text_field=args.text_field, id_field=args.id_field,
            instruction_field=args.instruction_field, instruction=args.instruction, prompt_name=args.prompt_name,
            variant=args.variant, max_batch_tokens=args.max_batch_tokens, window=args.window,
            output_dtype=args.output_dtype, normalize=args.normalize, on_error=args.on_error, restart=args.restart,
            format=None if args.format == "auto" else args.format, ray=args.ray is not None,
            ray_address=args.ray or None, workers=args.workers, threads=args.threads, device=args.device,
            max_length=args.max_length, progress=not args.quiet))

    return run_main(job, args.debug, interrupted="the completed parts are kept; rerun the same command to resume")


if __name__ == "__main__":
    sys.exit(main())
