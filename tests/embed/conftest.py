"""Fixtures for l2v-embed: one tiny exported artifact for the session, corpora made of l2v's packaged
real text (validation.txt), and readers for the Parquet output."""
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


@pytest.fixture(scope="session")
def artifact(tmp_path_factory):
    """A tiny random-weight qwen2 exported through l2v-export's own pipeline (max_length 64)."""
    import l2v
    from tiny import save_model_dir

    root = tmp_path_factory.mktemp("embed_art")
    base = save_model_dir(root / "base", "qwen2")
    return l2v.export_model(str(base), root / "art", max_length=64, torch_weights=False, progress=False)


@pytest.fixture(scope="session")
def rows():
    return corpus(240)


@pytest.fixture(scope="session")
def jsonl(tmp_path_factory, rows):
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", rows)


FAST = dict(window=16, max_batch_tokens=256, progress=False)


def run(artifact, inputs, out, **kw):
    """`embed_corpus` with small windows and batches (many parts from a small corpus), quiet."""
    from l2v.embed import EmbedOptions, embed_corpus

    return embed_corpus(EmbedOptions(str(artifact), [str(i) for i in inputs], str(out), **{**FAST, **kw}),
                        log=lambda m: None)


@pytest.fixture(scope="session")
def reference(artifact, jsonl, tmp_path_factory):
    """The output directory of an uninterrupted local run over the 240-row corpus (15 windows)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    run(artifact, [jsonl], out)
    return out
