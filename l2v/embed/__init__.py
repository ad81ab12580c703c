"""`l2v-embed`: embed a corpus into Parquet files, streaming, resumable, here or on Ray Data.

    from l2v.embed import EmbedOptions, embed_corpus
    manifest = embed_corpus(EmbedOptions("artifacts/smollm2", ["corpus.jsonl"], out="vectors/"))

Modules: `inputs` (INPUT args -> files), `reader` (rows out of JSONL / Parquet / CSV / text, checked),
`plan` (the plan pass: counts, bad rows, duplicate ids, windows), `batcher` (a window -> token-budget
batches -> vectors in input order), `quantize` (float16 / int8 / binary as sentence-transformers),
`parts` (atomic part files, job state, lock, manifest), `work` (one window, shared by every executor),
`job` (the orchestration and the local executor), `raydata` (the Ray Data executor), `prompts`.
Importing this package imports neither pyarrow nor ray.
"""
from l2v.embed.job import EmbedOptions, embed_corpus

__all__ = ["EmbedOptions", "embed_corpus"]
