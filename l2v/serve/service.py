"""What a server needs from an artifact, with no server in it: per-request tokenisation, cross-request
embedding, Matryoshka truncation and normalisation, and the served model's description.

`EmbeddingService` wraps `l2v.load(dir)` and uses the `Encoder`'s two halves apart, because a server
needs them apart: validation and token counts happen per request (`Encoder.rows`, so a bad request fails
alone and the usage block is exact), while the forward pass runs on rows gathered from many requests
(`Encoder.embed_rows`: length-sorted, under a padded-token budget). The vectors are those of `encode`:
same preprocessor, same backend, same pooling of views; only which rows share a forward pass changes,
and every artifact is validated to be padding- and batch-invariant (`alone_vs_batched_max_abs_diff`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from l2v.errors import InputError


@dataclass
class ServeConfig:
    """Everything a replica needs to open the artifact and apply the limits (plain values: it travels to
    Ray workers as a dict)."""
    artifact: str
    variant: str | None = None
    backend: str | None = None  # "onnx" | "torch" | None: whatever runs the variant
    device: str = "cpu"
    threads: int | None = None
    model_name: str | None = None  # the `model` clients send; default: the artifact directory's name
    max_batch_size: int = 32  # texts per forward pass, across clients (Ray Serve's @serve.batch)
    batch_wait_ms: float = 5.0
    max_batch_tokens: int = 16384  # padded tokens per forward pass
    max_items: int = 2048
    max_request_tokens: int = 131072
    normalize: bool = False  # L2-normalise every vector (OpenAI's vectors are unit length)
    matryoshka: bool = False  # allow `dimensions` below the artifact's dim even if it is not marked

    def check(self) -> "ServeConfig":
        for flag, value, low in (("--max-batch-size", self.max_batch_size, 1), ("--max-batch-tokens", self.max_batch_tokens, 1),
                                 ("--max-items", self.max_items, 1), ("--max-request-tokens", self.max_request_tokens, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"{flag} {value!r} must be an integer >= {low}")
        if not 0 <= self.batch_wait_ms <= 10_000:
            raise InputError(f"--batch-wait-ms {self.batch_wait_ms!r} must be between 0 and 10000")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads {self.threads!r} must be >= 1")
        if self.device not in ("cpu", "cuda"):
            raise InputError(f"--device {self.device!r} must be cpu or cuda")
        return self


def default_model_name(artifact) -> str:
    return Path(artifact).expanduser().resolve().name


def is_matryoshka(manifest) -> bool:
    """An artifact exported with `--dim D` below the hidden size was declared Matryoshka-trained by its
    exporter (the graph keeps the first D dimensions), so shorter prefixes are meaningful too."""
    return int(manifest.graph.dim) < int(manifest.model.hidden_size)


@dataclass(frozen=True)
class Item:
    """One input text after preprocessing: its rows (`views` of them; MetaEOL has several) and tokens."""
    rows: tuple
    n_tokens: int


def _l2(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class EmbeddingService:
    """Artifact -> tokenised `Item`s -> vectors; thread-safe like `Encoder`."""

    def __init__(self, config: ServeConfig):
        import l2v

        self.config = config.check()
        self.encoder = l2v.load(config.artifact, config.backend, variant=config.variant, device=config.device,
                                threads=config.threads)
        m = self.encoder.manifest
        self.name = config.model_name or default_model_name(config.artifact)
        self.dim = int(self.encoder.dim)
        self.in_graph_norm = bool(m.graph.normalize)
        self.normalize = bool(config.normalize) or self.in_graph_norm
        self.matryoshka = bool(config.matryoshka) or is_matryoshka(m)
        self.views = int(self.encoder.preprocessor.views)

    # ------------------------------------------------------------------ request side
    def items(self, texts: list[str], instruction=None) -> list:
        """The one place a request's prompt is applied: texts + the `instruction` field (None, one string
        for every text, or one string/None per text) -> what `Encoder.rows` takes (strings and
        `(instruction, text)` pairs). Named prompts (a manifest's prompt table) resolve here too."""
        if instruction is None:
            return list(texts)
        if isinstance(instruction, str):
            return [(instruction, t) for t in texts]
        return [t if i is None else (i, t) for i, t in zip(instruction, texts)]

    def tokenize(self, items) -> list[Item]:
        """Validate and tokenise; raises `l2v.errors.InputError` naming the bad item."""
        rows, v = self.encoder.rows(items), self.views
        return [Item(tuple(rows[i:i + v]), sum(len(r[0]) for r in rows[i:i + v])) for i in range(0, len(rows), v)]

    # ------------------------------------------------------------------ batch side
    def embed(self, items: list[Item]) -> np.ndarray:
        """Vectors `[len(items), dim]` for items gathered from any number of requests (before `finish`)."""
        rows = [r for it in items for r in it.rows]
        cfg = self.config
        raw = self.encoder.embed_rows(rows, batch_size=cfg.max_batch_size * self.views,
                                      max_batch_tokens=cfg.max_batch_tokens)
        return self.encoder.pool_views(raw)

    def finish(self, vectors: np.ndarray, dimensions: int | None = None) -> np.ndarray:
        """Matryoshka truncation, then L2 normalisation where the output is normalised."""
        cut = dimensions is not None and dimensions != self.dim
        if cut:
            vectors = vectors[:, :dimensions]
        if self.normalize and (cut or not self.in_graph_norm):
            vectors = _l2(vectors)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode(self, texts, instruction=None, dimensions: int | None = None) -> np.ndarray:
        """In-process reference path: what the server returns for one request."""
        return self.finish(self.embed(self.tokenize(self.items(list(texts), instruction))), dimensions)

    def info(self) -> dict:
        m = self.encoder.manifest
        return {"id": self.name, "object": "model", "owned_by": "l2v", "created": 0,
                "l2v": {"dim": self.dim, "max_length": m.max_length, "architecture": m.model.architecture,
                        "pooling": m.graph.pooling, "attention": m.graph.attention, "preset": m.preset,
                        "variant": self.encoder.variant, "normalized": self.normalize, "matryoshka": self.matryoshka,
                        "instruction_format": m.text.get("instruction_format")}}
