"""sentence-transformers' own CPU backends on an l2v artifact's model: the peers of bench/cpu_engines.py.

Runs in the peers' venv (sentence-transformers + optimum-intel pin another transformers than l2v), so it
imports nothing from l2v; bench/cpu_engines.py calls it and scores the embeddings against our fp32:

    PEERS_PYTHON bench/cpu_engines_st.py ARTIFACT --texts texts.json --work DIR --out peers.json \
        [--max-tokens 128] [--batch-sizes 1,32] [--calib 128]

Rows (`st/...`): torch fp32; openvino (optimum-intel export, f32 inference); openvino-qint8
(`export_static_quantized_openvino_model`: NNCF static int8, calibrated on the first --calib texts from a
local folder: the helper's default dataset is on the Hub); onnx and onnx-qint8
(`export_dynamic_quantized_onnx_model`, avx2). A row that does not install, load or run records the
error instead. What sentence-transformers builds from the artifact's torch/ weights is Transformer +
mean Pooling with the decoder *causal* (its default): a different model from our bidirectional one, so
its recall is also given against its own torch fp32.

Writes WORK/embeddings.npz (keys `st__torch`, ... in the order of --texts) and --out (rows, speed, errors).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np


GROUPS = ("torch", "openvino", "onnx")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)


def model_source(artifact: Path, work: Path) -> Path:
    """One HF folder for sentence-transformers: the artifact's torch/ weights and its tokenizer files (linked).
    A tokenizer class this venv's transformers does not have (transformers 5's `TokenizersBackend` under
    4.x, which optimum-onnx pins) is written as `PreTrainedTokenizerFast`, which reads the same tokenizer.json."""
    import transformers

    src = work / "src"
    src.mkdir(parents=True, exist_ok=True)
    files = [f for f in (artifact / "torch").iterdir() if f.is_file()]
    files += [artifact / n for n in ("tokenizer.json", "special_tokens_map.json", "chat_template.jinja")
              if (artifact / n).exists()]
    for f in files:
        if not (src / f.name).exists():
            (src / f.name).symlink_to(f.resolve())
    cfg = json.loads((artifact / "tokenizer_config.json").read_text())
    if not hasattr(transformers, str(cfg.get("tokenizer_class"))):
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    (src / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    return src


def st_folder(artifact: Path, out: Path, max_tokens: int):
    from sentence_transformers import SentenceTransformer, models

    manifest = json.loads((artifact / "l2v.json").read_text())
    src = model_source(artifact, out.parent)
    tr = models.Transformer(str(src), max_seq_length=max_tokens, tokenizer_name_or_path=str(src),
                            model_args={"local_files_only": True}, tokenizer_args={"local_files_only": True})
    tok_spec = manifest.get("tokenizer") or manifest.get("text", {})
    if tok_spec.get("pad_token"):
        tr.tokenizer.pad_token = tok_spec["pad_token"]
    if tok_spec.get("padding_side"):
        tr.tokenizer.padding_side = tok_spec["padding_side"]
    pool = models.Pooling(tr.get_word_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[tr, pool], device="cpu")
    st.save(str(out))
    return st


def timing(model, texts, batch_sizes, max_tokens, min_seconds, max_reps) -> dict:
    """p50/p99 ms per `encode` of the longest texts (tokenisation included: that is the peer's call)."""
    longest = sorted(texts, key=len)[-max(batch_sizes):]
    out = {}
    for bs in batch_sizes:
        batch = (longest * bs)[:bs]
        model.encode(batch, batch_size=bs)
        times, t0 = [], time.perf_counter()
        while len(times) < max_reps and not (len(times) >= 3 and time.perf_counter() - t0 > min_seconds):
            t = time.perf_counter()
            model.encode(batch, batch_size=bs)
            times.append(time.perf_counter() - t)
        p50 = float(np.percentile(times, 50))
        out[f"b{bs}"] = {"p50_ms": round(1e3 * p50, 2), "p99_ms": round(1e3 * float(np.percentile(times, 99)), 2),
                         "n": len(times), "texts_per_s": round(bs / p50, 1),
                         "note": "not interleaved with the l2v engines (another process); includes tokenisation"}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("artifact")
    p.add_argument("--texts", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--calib", type=int, default=128)
    p.add_argument("--min-seconds", type=float, default=10.0)
    p.add_argument("--max-reps", type=int, default=50)
    p.add_argument("--groups", default=",".join(GROUPS), help="which peers this venv runs: torch (st/torch), "
                   "openvino (st/openvino, st/openvino-qint8), onnx (st/onnx, st/onnx-qint8)")
    args = p.parse_args(argv)
    groups = [g for g in args.groups.split(",") if g]
    if set(groups) - set(GROUPS):
        p.error(f"--groups {args.groups!r}: unknown {sorted(set(groups) - set(GROUPS))}; choose from {GROUPS}")
    import sentence_transformers
    import transformers
    from sentence_transformers import SentenceTransformer

    artifact, work, out = Path(args.artifact).resolve(), Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    texts = json.loads(Path(args.texts).read_text())
    bss = [int(b) for b in args.batch_sizes.split(",")]
    res = {"meta": {"sentence_transformers": sentence_transformers.__version__, "transformers": transformers.__version__},
           "rows": {}, "errors": {}}
    for mod in ("optimum.intel", "optimum.onnxruntime", "openvino", "nncf"):
        try:
            m = __import__(mod, fromlist=["__version__"])
            res["meta"][mod] = getattr(m, "__version__", "importable")
        except ImportError as e:
            res["meta"][mod] = f"not importable: {e}"
    emb = {}
    st_dir = work / "st"
    ov_cfg = {"INFERENCE_PRECISION_HINT": "f32"}

    def attempt(label, make, note=""):
        try:
            t = time.perf_counter()
            model = make()
            model.max_seq_length = args.max_tokens
            emb[label] = model.encode(texts, batch_size=32, convert_to_numpy=True).astype(np.float32)
            res["rows"][label] = {"engine": label, "embed_s": round(time.perf_counter() - t, 1), "note": note,
                                  **timing(model, texts, bss, args.max_tokens, args.min_seconds, args.max_reps)}
            log(f"{label}: ok")
            return model
        except Exception as e:  # a peer that does not install/load/run here is a row with the reason
            res["errors"][label] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            res.setdefault("tracebacks", {})[label] = traceback.format_exc()[-2000:]
            log(f"{label} failed: {e!r}")
            return None
        finally:  # after every peer: a later one that hangs or crashes keeps these
            out.write_text(json.dumps(res, indent=2))
            np.savez(work / "embeddings.npz", **{k.replace("/", "__"): v for k, v in emb.items()})

    try:  # the folder every backend loads from; without it no row can run
        torch_model = st_folder(artifact, st_dir, args.max_tokens)
    except Exception as e:
        res["errors"]["st/*"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        out.write_text(json.dumps(res, indent=2))
        raise
    if "torch" in groups:
        attempt("st/torch", lambda: torch_model, "causal decoder + mean pooling")
    torch_model = None  # free it before the other backends load
    ov_model = None if "openvino" not in groups else attempt("st/openvino", lambda: SentenceTransformer(
        str(st_dir), backend="openvino", device="cpu", local_files_only=True,
        model_kwargs={"export": True, "ov_config": ov_cfg}), "optimum-intel export, f32")
    if ov_model is not None:
        def static_int8():
            from sentence_transformers import export_static_quantized_openvino_model

            calib_dir = work / "calib"
            calib_dir.mkdir(exist_ok=True)
            (calib_dir / "train.txt").write_text("\n".join(t.replace("\n", " ") for t in texts[:args.calib]) + "\n")
            export_static_quantized_openvino_model(ov_model, None, str(st_dir), dataset_name=str(calib_dir),
                                                   dataset_config_name="default", dataset_split="train",
                                                   column_name="text")
            return SentenceTransformer(str(st_dir), backend="openvino", device="cpu", local_files_only=True,
                                       model_kwargs={"file_name": "openvino/openvino_model_qint8_quantized.xml",
                                                     "ov_config": ov_cfg})
        attempt("st/openvino-qint8", static_int8, f"NNCF static int8, calibrated on {args.calib} of the texts")
    onnx_model = None if "onnx" not in groups else attempt("st/onnx", lambda: SentenceTransformer(
        str(st_dir), backend="onnx", device="cpu", local_files_only=True), "optimum ONNX export")
    if onnx_model is not None:
        def dynamic_int8():
            from sentence_transformers import export_dynamic_quantized_onnx_model

            export_dynamic_quantized_onnx_model(onnx_model, "avx2", str(st_dir))
            return SentenceTransformer(str(st_dir), backend="onnx", device="cpu", local_files_only=True,
                                       model_kwargs={"file_name": "onnx/model_qint8_avx2.onnx"})
        attempt("st/onnx-qint8", dynamic_int8, "ORT dynamic int8 (avx2)")
    np.savez(work / "embeddings.npz", **{k.replace("/", "__"): v for k, v in emb.items()})
    out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
