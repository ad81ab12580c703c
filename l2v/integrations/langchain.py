"""LangChain `Embeddings` over an l2v artifact: `L2VEmbeddings("artifacts/gemma")` (or an `Encoder`).

`embed_documents` / `embed_query` run `Encoder.encode` with the model's document / query prompt
(`l2v.integrations.roles`); `query_instruction` embeds queries as `(instruction, text)` pairs instead,
for artifacts whose template has an instruction slot (llm2vec, e5 presets). Needs `langchain-core`
(`pip install 'l2v-export[langchain]'`)."""
from __future__ import annotations

from l2v.integrations.roles import DOCUMENT_NAMES, QUERY_NAMES, open_encoder, require, role

_core = require("langchain_core.embeddings", "langchain-core", "langchain", "the LangChain integration")


class L2VEmbeddings(_core.Embeddings):
    """LangChain embeddings from an l2v artifact. `model`: an artifact path (opened with `l2v.load(model,
    **load_kwargs)`, e.g. `variant="int8-smooth"`) or an `Encoder`. `query_prompt_name` / `query_prompt`
    and `document_prompt_name` / `document_prompt` override the model's own choice."""

    def __init__(self, model, *, batch_size: int = 32, normalize: bool | None = None,
                 query_prompt_name: str | None = None, query_prompt: str | None = None,
                 document_prompt_name: str | None = None, document_prompt: str | None = None,
                 query_instruction: str | None = None, **load_kwargs):
        self.encoder = open_encoder(model, **load_kwargs)
        self.batch_size, self.normalize, self.query_instruction = batch_size, normalize, query_instruction
        self.query_role = role(self.encoder, QUERY_NAMES, query_prompt_name, query_prompt)
        self.document_role = role(self.encoder, DOCUMENT_NAMES, document_prompt_name, document_prompt)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vecs = self.encoder.encode(list(texts), batch_size=self.batch_size, normalize=self.normalize,
                                   **self.document_role.kwargs())
        return vecs.tolist()

    def embed_query(self, text: str) -> list[float]:
        item = [(self.query_instruction, text)] if self.query_instruction else [text]
        return self.encoder.encode(item, batch_size=self.batch_size, normalize=self.normalize,
                                   **self.query_role.kwargs())[0].tolist()
