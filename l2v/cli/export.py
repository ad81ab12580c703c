"""`l2v-export`: flags -> `l2v.export.pipeline.export_model`. Nothing else happens here."""
from __future__ import annotations

import argparse
import sys

from l2v.cli.common import run_main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="l2v-export", description="Export a decoder LLM (+ LLM2Vec adapters) "
                                "to a validated bidirectional ONNX embedding artifact.")
    p.add_argument("model", nargs="?", help="local HF directory, sentence-transformers folder (modules.json), "
                   ".gguf file, or cached hub id (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--demo", action="store_true", help="use the embedded default model, SmolLM2-135M-Instruct "
                   "(an untrained embedder: it shows the pipeline, not retrieval quality)")
    p.add_argument("--adapter", action="append", default=[], metavar="DIR",
                   help="LoRA adapter directory to merge, in order (repeatable: MNTP, then SimCSE/supervised)")
    p.add_argument("--keep-last-adapter-unmerged", action="store_true",
                   help="apply the last --adapter as a LoRA side branch (x·Aᵀ·Bᵀ·scale) instead of folding it into "
                   "the weights (as LLM2Vec loads its second adapter); equals merging to rounding; "
                   "the manifest records which")
    p.add_argument("--out", required=True, metavar="DIR", help="artifact directory to create")
    p.add_argument("--preset", default=None, choices=["llm2vec", "e5", "prompteol", "pcot", "ke", "metaeol"],
                   help="recipe: attention + pooling + text template together (default llm2vec; docs/text.md)")
    p.add_argument("--template", default=None, metavar="T",
                   help="text template with {text} and optional {instruction}; overrides the preset's")
    p.add_argument("--chat-template", default="auto",
                   choices=["auto", "none", "llama3", "mistral", "llama2", "gemma", "qwen2"],
                   help="chat wrapping as llm2vec 0.2.3 (auto: from the model's / adapters' base name)")
    p.add_argument("--text-mode", default=None, choices=["clean", "compat"],
                   help="compat: llm2vec 0.2.3 bug-for-bug pre-processing, the llm2vec preset's default; clean: "
                   "fixes its inference-time bugs (docs/text.md), the other presets' default")
    p.add_argument("--doc-max-length", type=int, default=-1, metavar="N",
                   help="word-level truncation of the text to N tokens (llm2vec: 400; 0 turns it off)")
    p.add_argument("--pooling", default=None, help="default: the preset's",
                   choices=["mean", "weighted_mean", "last_token", "eos_token", "bos_token"])
    p.add_argument("--dtype", default="fp32", metavar="fp32|fp16|bf16[,...]",
                   help="the graph(s) written, each validated: fp32 (default); fp16 or bf16 alone writes only that "
                   "graph, as the default variant; a list (fp32,fp16) writes several")
    p.add_argument("--max-length", type=int, default=None, metavar="N",
                   help="tokens per text, longer texts are truncated (default 512, or the model's context if shorter)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise inside the graph")
    p.add_argument("--dim", type=int, default=None, metavar="D", help="Matryoshka: keep the first D dimensions "
                   "(a sentence-transformers folder's truncate_dim otherwise)")
    p.add_argument("--causal", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the causal mask (default: the preset's; --no-causal forces bidirectional)")
    p.add_argument("--opset", type=int, default=18, metavar="N",
                   help="ONNX opset of the graph (18 up to what the installed onnx supports; default 18)")
    p.add_argument("--tokenizer", default=None, metavar="DIR", help="tokenizer directory, if not beside MODEL")
    p.add_argument("--no-torch-weights", dest="torch_weights", action="store_false", default=None,
                   help="do not store torch/, the second fp32 copy of the weights (about halves the artifact); "
                   "you lose backend='torch', bnb variants, and a later l2v-quantize of int8-smooth/w8/w4/auto "
                   "(add those at export with --quant)")
    p.add_argument("--torch-weights", dest="torch_weights", action="store_true",
                   help="store them also when the export is streamed (default there: one copy of the weights, "
                   "in the ONNX external data)")
    p.add_argument("--stream", default="auto", choices=["auto", "on", "off"],
                   help="export tensor by tensor without the model in memory (auto: when the fp32 weights pass "
                   "2 GiB or would not fit; docs/scale.md)")
    p.add_argument("--max-memory-gb", type=float, default=None, metavar="GIB",
                   help="refuse, before writing anything, a plan whose peak memory passes this many GiB "
                   "(default: what the machine has available)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing artifact at --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr (errors still print)")
    p.add_argument("--verbose", action="store_true", help="show the ONNX exporter's own output")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    from l2v.cli.quantize import add_quant_flags, add_trt_flags

    add_quant_flags(p)
    add_trt_flags(p)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def job():
        from l2v.export.pipeline import export_model

        out = export_model(
            args.model, args.out, adapters=args.adapter, unmerged_last=args.keep_last_adapter_unmerged,
            pooling=args.pooling, dtype=args.dtype,
            max_length=args.max_length, normalize=args.normalize, dim=args.dim, causal=args.causal,
            preset=args.preset, template=args.template, chat_template=args.chat_template,
            text_mode=args.text_mode, doc_max_length=args.doc_max_length,
            overwrite=args.overwrite, opset=args.opset, torch_weights=args.torch_weights,
            tokenizer=args.tokenizer, demo=args.demo, progress=not args.quiet, verbose=args.verbose,
            quant=args.quant, min_recall=args.min_recall, calib=args.calib, eval=args.eval,
            trt=args.trt, trt_precisions=args.trt_precision, trt_shapes=args.trt_shapes,
            stream=args.stream, max_memory_gb=args.max_memory_gb,
        )
        print(out)

    return run_main(job, args.debug)


if __name__ == "__main__":
    sys.exit(main())
