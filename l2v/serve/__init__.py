"""Serving: `l2v-serve` (an OpenAI-compatible `/v1/embeddings` on Ray Serve, docs/serving.md).

`openai_api` holds the request/response rules (no framework), `service` what a server needs from an
artifact (`EmbeddingService` over `l2v.load`), `ray_app` the Ray Serve deployment, `server` the process
lifecycle, `process` a child-process runner for tests and benchmarks. Ray is the optional extra
`l2v-export[serve]`; nothing here imports it until a server starts.
"""
