"""Helpers for the l2v-embed tests (imported by name: a module called `conftest` is ambiguous when
several test folders have one): corpora of l2v's packaged real text, a quiet `embed_corpus`, and a reader
for the Parquet output."""
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def sentences() -> list[str]:
    text = resources.files("l2v.data").joinpath("validation.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def corpus(n: int, seed: int = 0) -> list[dict]:
    """n rows {"id": "d<i>", "text": ...}: real sentences cut to 1..60 words, so lengths vary."""
    rng = np.random.default_rng(seed)
    lines = sentences()
    rows = []
    for i in range(n):
        words = lines[int(rng.integers(len(lines)))].split()
        start = int(rng.integers(len(words)))
        rows.append({"id": f"d{i}", "text": " ".join((words[start:] + words)[: int(rng.integers(1, 61))])})
    return rows


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_output(out: Path):
    """(ids, embeddings [N, width]) of every part in order, and the manifest."""
    files = sorted(Path(out).glob("part-*.parquet"))
    table = pq.read_table(files)
    ids = table.column("id").to_pylist()
    col = table.column("embedding").combine_chunks()
    emb = np.asarray(col.flatten()).reshape(len(ids), col.type.list_size)
    manifest = json.loads((Path(out) / "embed.json").read_text())
    return ids, emb, manifest


FAST = dict(window=16, max_batch_tokens=256, progress=False)


def run(artifact, inputs, out, **kw):
    """`embed_corpus` with small windows and batches (many parts from a small corpus), quiet."""
    from l2v.embed import EmbedOptions, embed_corpus

    return embed_corpus(EmbedOptions(str(artifact), [str(i) for i in inputs], str(out), **{**FAST, **kw}),
                        log=lambda m: None)


def bad_instruction_corpus(path: Path) -> Path:
    """20 rows with an instruction field `q`; row 18 (line 18) has an instruction longer than max_length."""
    rows = corpus(20)
    for r in rows:
        r["q"] = "Represent this text"
    rows[17]["q"] = " ".join(["instruction"] * 80)
    return write_jsonl(path, rows)
