"""OpenAI-compatible `/v1/embeddings`: request validation and response bodies, as plain functions.

Kept free of any web framework (and of Ray) so the rules are unit-tested without a server. Every
rejected request raises `ApiError`, which the server turns into `{"error": {"message", "type", "param",
"code"}}` with its HTTP status: the shape the `openai` client parses into `BadRequestError` /
`NotFoundError`.

Extension (documented in docs/serving.md): `instruction` — a string applied to every input, or a list
of one string (or null) per input — embeds `(instruction, text)` pairs, exactly as
`encode([(instruction, text)])`. `dimensions` is OpenAI's Matryoshka field: accepted below the
artifact's dimension only where truncation is allowed (see `l2v.serve.service`).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

ENCODING_FORMATS = ("float", "base64")


class ApiError(Exception):
    """A request the server refuses: HTTP `status` and the OpenAI error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    max_items: int = 2048  # OpenAI's own per-request limit
    max_request_tokens: int = 131072  # after tokenisation, all inputs together (each is capped at max_length)


@dataclass(frozen=True)
class EmbeddingsRequest:
    texts: list[str]
    instruction: str | list | None  # as sent: None, one string, or one string/None per text
    model: str
    dimensions: int | None
    encoding_format: str


def bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param, code)


def not_found(model: str, served: str) -> ApiError:
    return ApiError(404, f"the model {model!r} does not exist; this server serves {served!r}", "model",
                    "model_not_found")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _texts(inp, limits: Limits) -> list[str]:
    if isinstance(inp, str):
        inp = [inp]
    if not isinstance(inp, list):
        raise bad(f"input must be a string or a list of strings, not {type(inp).__name__}", "input")
    if not inp:
        raise bad("input is empty: send at least one string", "input")
    if all(_is_int(t) for t in inp) or any(isinstance(t, list) and t and all(_is_int(x) for x in t) for t in inp):
        raise bad("token arrays are not supported: send text (the server applies the artifact's text spec)", "input")
    if len(inp) > limits.max_items:
        raise bad(f"input has {len(inp)} items, more than this server's limit of {limits.max_items}", "input")
    for i, t in enumerate(inp):
        if not isinstance(t, str):
            raise bad(f"input[{i}] is a {type(t).__name__}, not a string", "input")
        if not t:  # OpenAI rejects them too; `encode` would embed "" as the eos token
            raise bad(f"input[{i}] is an empty string", "input")
    return inp


def _instruction(instr, n: int):
    if instr is None or isinstance(instr, str):
        return instr
    if isinstance(instr, list) and len(instr) == n and all(x is None or isinstance(x, str) for x in instr):
        return instr
    raise bad("instruction must be a string, or a list of strings (or null) as long as input", "instruction")


def _dimensions(dims, dim: int, matryoshka: bool):
    if dims is None:
        return None
    if not _is_int(dims) or not 0 < dims <= dim:
        raise bad(f"dimensions must be an integer in 1..{dim}", "dimensions")
    if dims != dim and not matryoshka:
        raise bad(f"this model gives {dim}-dimensional vectors and is not marked Matryoshka, so it cannot be "
                  "truncated (export it with --dim, or start the server with --matryoshka)", "dimensions")
    return dims


def parse_request(body, model_name: str, dim: int, matryoshka: bool, limits: Limits = Limits()) -> EmbeddingsRequest:
    """Validate a decoded JSON body; raises `ApiError` (400, or 404 for another model)."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", code="invalid_request")
    model = body.get("model", model_name)
    if not isinstance(model, str):
        raise bad("model must be a string", "model")
    if model != model_name:
        raise not_found(model, model_name)
    if "input" not in body:
        raise bad("input is required", "input", "missing_required_parameter")
    texts = _texts(body["input"], limits)
    instruction = _instruction(body.get("instruction"), len(texts))
    dims = _dimensions(body.get("dimensions"), dim, matryoshka)
    fmt = body.get("encoding_format") or "float"
    if fmt not in ENCODING_FORMATS:
        raise bad(f"encoding_format {fmt!r} must be one of {', '.join(ENCODING_FORMATS)}", "encoding_format")
    return EmbeddingsRequest(texts, instruction, model, dims, fmt)


def check_tokens(n_tokens: int, limits: Limits = Limits()) -> None:
    if n_tokens > limits.max_request_tokens:
        raise bad(f"the input holds {n_tokens} tokens, more than this server's limit of "
                  f"{limits.max_request_tokens} per request", "input", "too_many_tokens")


def encode_vector(v: np.ndarray, fmt: str):
    if fmt == "base64":  # what the openai client decodes: little-endian float32 bytes
        return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")
    return np.asarray(v, dtype=np.float32).tolist()


def response_body(vectors: np.ndarray, fmt: str, model: str, n_tokens: int) -> dict:
    return {"object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": encode_vector(v, fmt)}
                     for i, v in enumerate(vectors)],
            "model": model,
            "usage": {"prompt_tokens": int(n_tokens), "total_tokens": int(n_tokens)}}
