"""The Ray Serve application: an OpenAI-compatible embeddings endpoint over one artifact.

Ray Serve does the serving (HTTP proxy, replicas, scale-out, `@serve.batch`); this module only maps HTTP
to `EmbeddingService`. Each input text is one call into the batch queue, so `max_batch_size` counts texts
across all clients; inside a batch the service sorts rows by length and cuts them under a padded-token
budget (`max_batch_tokens`), so a long text does not pad a batch of short ones.

Imported only by the server (it imports Ray and FastAPI at module level, as Ray Serve's decorators need).
"""
# no `from __future__ import annotations` here: Ray Serve's ingress re-wraps the methods and FastAPI then
# cannot resolve string annotations (a `request: Request` parameter became a required query field)
import asyncio
import logging
from dataclasses import asdict
from typing import List

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from l2v.errors import L2VError
from l2v.serve.openai_api import ApiError, Limits, check_tokens, not_found, parse_request, response_body
from l2v.serve.service import EmbeddingService, Item, ServeConfig

log = logging.getLogger("l2v.serve")
api = FastAPI(title="l2v embeddings", docs_url=None, redoc_url=None, openapi_url=None)


@api.exception_handler(ApiError)
async def _api_error(request: Request, e: ApiError):
    return JSONResponse(e.body(), status_code=e.status)


@serve.deployment(name="l2v-embeddings", max_ongoing_requests=256)
@serve.ingress(api)
class EmbeddingServer:
    def __init__(self, config: dict):
        cfg = ServeConfig(**config)
        self.service = EmbeddingService(cfg)
        self.limits = Limits(cfg.max_items, cfg.max_request_tokens)
        self.stats = {"requests": 0, "texts": 0, "tokens": 0, "batches": 0, "batched_texts": 0, "max_batch": 0,
                      "errors_4xx": 0}
        self._embed.set_max_batch_size(cfg.max_batch_size)
        self._embed.set_batch_wait_timeout_s(cfg.batch_wait_ms / 1000.0)

    @api.get("/health")
    def health(self) -> dict:
        return {"status": "ok", "model": self.service.name}

    @api.get("/stats")
    def get_stats(self) -> dict:
        """This replica's counters: how many texts each forward pass held (batching across clients)."""
        st = dict(self.stats)
        st["mean_batch"] = round(st["batched_texts"] / st["batches"], 2) if st["batches"] else 0.0
        return st

    @api.get("/v1/models")
    def models(self) -> dict:
        return {"object": "list", "data": [self.service.info()]}

    @api.get("/v1/models/{model_id}")
    def model(self, model_id: str) -> dict:
        if model_id != self.service.name:
            raise not_found(model_id, self.service.name)
        return self.service.info()

    @api.post("/v1/embeddings")
    async def embeddings(self, request: Request):
        try:
            return await self._embeddings(request)
        except ApiError:
            self.stats["errors_4xx"] += 1
            raise

    async def _embeddings(self, request: Request):
        svc = self.service
        try:
            body = await request.json()
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            raise ApiError(400, "the request body is not valid JSON", code="invalid_json")
        req = parse_request(body, svc.name, svc.dim, svc.matryoshka, self.limits)
        try:
            items = await asyncio.to_thread(svc.tokenize, svc.items(req.texts, req.instruction))
        except L2VError as e:  # the preprocessor's own checks (an instruction longer than max_length, ...)
            raise ApiError(400, str(e), "input")
        n_tokens = sum(it.n_tokens for it in items)
        check_tokens(n_tokens, self.limits)
        vectors = await asyncio.gather(*(self._embed(it) for it in items))
        out = svc.finish(np.stack(vectors), req.dimensions)
        self.stats["requests"] += 1
        self.stats["texts"] += len(items)
        self.stats["tokens"] += n_tokens
        return JSONResponse(response_body(out, req.encoding_format, svc.name, n_tokens))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _embed(self, items: List[Item]) -> List[np.ndarray]:
        # ONNX Runtime releases the GIL: the event loop keeps accepting and tokenising requests meanwhile
        self.stats["batches"] += 1
        self.stats["batched_texts"] += len(items)
        self.stats["max_batch"] = max(self.stats["max_batch"], len(items))
        return list(await asyncio.to_thread(self.service.embed, items))


def build_app(config: ServeConfig, replicas: int = 1, cpus_per_replica: float = 1.0):
    return EmbeddingServer.options(num_replicas=replicas,
                                   ray_actor_options={"num_cpus": cpus_per_replica}).bind(asdict(config))
