"""LlamaIndex `BaseEmbedding` over an l2v artifact: `L2VEmbedding(model="artifacts/gemma")`.

Queries (`get_query_embedding`) and texts (`get_text_embedding(s)`) take the model's query / document
prompts (`l2v.integrations.roles`); `query_instruction` embeds queries as `(instruction, text)` pairs.
Needs `llama-index-core` (`pip install 'l2v-export[llamaindex]'`)."""
from __future__ import annotations

from typing import Any

from l2v.integrations.roles import DOCUMENT_NAMES, QUERY_NAMES, open_encoder, require, role

_base = require("llama_index.core.base.embeddings.base", "llama-index-core", "llamaindex",
                "the LlamaIndex integration")
_bridge = require("llama_index.core.bridge.pydantic", "llama-index-core", "llamaindex", "the LlamaIndex integration")


class L2VEmbedding(_base.BaseEmbedding):
    """LlamaIndex embedding model from an l2v artifact. `model`: an artifact path or an `Encoder`;
    `load_kwargs`: options of `l2v.load` (variant, backend, device, threads)."""

    normalize: bool | None = _bridge.Field(default=None, description="L2-normalise outside the graph")
    query_prompt_name: str | None = None
    query_prompt: str | None = None
    document_prompt_name: str | None = None
    document_prompt: str | None = None
    query_instruction: str | None = None
    _encoder: Any = _bridge.PrivateAttr()
    _query: Any = _bridge.PrivateAttr()
    _document: Any = _bridge.PrivateAttr()

    def __init__(self, model, load_kwargs: dict | None = None, **kwargs):
        encoder = open_encoder(model, **(load_kwargs or {}))
        kwargs.setdefault("model_name", str(encoder.root))
        super().__init__(**kwargs)
        self._encoder = encoder
        self._query = role(encoder, QUERY_NAMES, self.query_prompt_name, self.query_prompt)
        self._document = role(encoder, DOCUMENT_NAMES, self.document_prompt_name, self.document_prompt)

    @classmethod
    def class_name(cls) -> str:
        return "L2VEmbedding"

    @property
    def encoder(self):
        return self._encoder

    def _encode(self, items: list, who) -> list[list[float]]:
        return self._encoder.encode(items, batch_size=self.embed_batch_size, normalize=self.normalize,
                                    **who.kwargs()).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        item = (self.query_instruction, query) if self.query_instruction else query
        return self._encode([item], self._query)[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encode([text], self._document)[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encode(list(texts), self._document) if texts else []
