"""How far are the vectors of engines that do not run `l2v_st.py` (TEI, vLLM) from the artifact's?

    python bench/engine_gap.py ARTIFACT [--instruction "Retrieve passages"] [--out bench/results]

Packages ARTIFACT with `l2v-package --format hf`, then embeds the packaged validation sentences three ways:
l2v's `encode` (the reference), sentence-transformers with the package (`l2v_st.py`), and what an engine that
reads only `config.json` and `1_Pooling/config.json` computes: the backbone with the package's bidirectional
flags (transformers' own path, no explicit mask), the tokenizer's special tokens, the prompt prepended as raw
text (`instruction + " " + text`), and the pooling mode over every token. Prints and saves min / mean cosine
against `encode`, for plain texts and with an instruction. Accuracy figures: they do not depend on load.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cos(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def engine_vectors(pkg: Path, texts: list[str], batch: int = 8) -> np.ndarray:
    """All-token pooling (ST Pooling's mode on the real attention mask) over transformers' bidirectional
    path from config.json: what TEI / vLLM compute from the package's files."""
    import torch
    from sentence_transformers.models import Pooling
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(pkg), local_files_only=True)
    tok.padding_side = "right"
    model = AutoModel.from_pretrained(str(pkg), local_files_only=True).eval()
    pool_cfg = json.loads((pkg / "1_Pooling" / "config.json").read_text())
    pooling = Pooling.load(str(pkg / "1_Pooling")) if "l2v_pooling" not in pool_cfg else None
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            enc = tok(texts[i:i + batch], padding=True, truncation=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            feats = {"token_embeddings": hidden, "attention_mask": enc["attention_mask"]}
            out.append(pooling(feats)["sentence_embedding"].numpy())
    return np.concatenate(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact")
    p.add_argument("--instruction", default="Retrieve passages that answer the question")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    a = p.parse_args(argv)

    from sentence_transformers import SentenceTransformer

    import l2v
    from l2v.export.options import default_texts
    from l2v.package.hf import write_hf_package

    texts = [t for t in default_texts() if t.strip()][:48]
    enc = l2v.load(a.artifact)
    ref, ref_i = enc.encode(texts), enc.encode([(a.instruction, t) for t in texts])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pkg = write_hf_package(a.artifact, Path(tmp) / "pkg", prompts={"q": a.instruction})
        st = SentenceTransformer(str(pkg), trust_remote_code=True, device="cpu")
        cases = [("sentence-transformers + l2v_st.py", "plain", st.encode(texts, batch_size=8), ref),
                 ("sentence-transformers + l2v_st.py", "instruction", st.encode(texts, prompt_name="q", batch_size=8), ref_i),
                 ("engine view: config.json + 1_Pooling", "plain", engine_vectors(pkg, texts), ref),
                 ("engine view: config.json + 1_Pooling", "instruction",
                  engine_vectors(pkg, [f"{a.instruction} {t}" for t in texts]), ref_i)]
        bos = enc.preprocessor.tokenizer("x")["input_ids"][0] == enc.preprocessor.tokenizer.bos_token_id
        for how, inputs, got, r in cases:
            c = cos(got, r)
            rows.append({"how": how, "inputs": inputs, "min_cos": float(c.min()), "mean_cos": float(c.mean())})
    name = Path(a.artifact).resolve().name
    summary = {"artifact": str(Path(a.artifact).resolve()), "texts": len(texts), "instruction": a.instruction,
               "pooling": enc.manifest.graph.pooling, "tokenizer_adds_bos": bool(bos), "rows": rows}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"engine_gap_{name}.json").write_text(json.dumps(summary, indent=1))
    md = [f"`{name}` ({enc.manifest.graph.pooling} pooling, tokenizer adds BOS: {bool(bos)}), {len(texts)} packaged "
          f"validation sentences, instruction {a.instruction!r}: cosine against `l2v.load(...).encode`.", "",
          "| vectors | inputs | min cos | mean cos |", "|---|---|---|---|"]
    md += [f"| {r['how']} | {r['inputs']} | {r['min_cos']:.6f} | {r['mean_cos']:.6f} |" for r in rows]
    (out / f"engine_gap_{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
