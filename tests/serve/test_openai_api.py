"""The OpenAI request/response rules, without a server."""
import base64

import numpy as np
import pytest

from l2v.serve.openai_api import ApiError, Limits, check_tokens, encode_vector, parse_request, response_body


def parse(body, dim=8, matryoshka=False, limits=Limits()):
    return parse_request(body, "m", dim, matryoshka, limits)


def test_string_and_list_inputs():
    r = parse({"input": "a", "model": "m"})
    assert r.texts == ["a"] and r.instruction is None and r.encoding_format == "float" and r.dimensions is None
    r = parse({"input": ["a", "b"], "encoding_format": "base64", "dimensions": 8})  # model defaults to ours
    assert r.texts == ["a", "b"] and r.encoding_format == "base64" and r.dimensions == 8


def test_instruction_extension_is_passed_through():
    assert parse({"input": ["a", "b"], "instruction": "Q"}).instruction == "Q"
    assert parse({"input": ["a", "b"], "instruction": ["Q", None]}).instruction == ["Q", None]


@pytest.mark.parametrize("body,status,param,code", [
    ({"input": []}, 400, "input", "invalid_value"),
    ({"input": ""}, 400, "input", "invalid_value"),
    ({"input": ["a", 3]}, 400, "input", "invalid_value"),
    ({"input": ["a", None]}, 400, "input", "invalid_value"),
    ({"input": [1, 2, 3]}, 400, "input", "invalid_value"),  # token arrays
    ({"input": [[1, 2]]}, 400, "input", "invalid_value"),
    ({"input": {"a": 1}}, 400, "input", "invalid_value"),
    ({}, 400, "input", "missing_required_parameter"),
    ({"input": "a", "model": "other"}, 404, "model", "model_not_found"),
    ({"input": "a", "model": 3}, 400, "model", "invalid_value"),
    ({"input": "a", "dimensions": 0}, 400, "dimensions", "invalid_value"),
    ({"input": "a", "dimensions": 9}, 400, "dimensions", "invalid_value"),
    ({"input": "a", "dimensions": 4}, 400, "dimensions", "invalid_value"),  # not Matryoshka
    ({"input": "a", "dimensions": True}, 400, "dimensions", "invalid_value"),
    ({"input": "a", "dimensions": 4.0}, 400, "dimensions", "invalid_value"),
    ({"input": "a", "encoding_format": "int8"}, 400, "encoding_format", "invalid_value"),
    ({"input": ["a", "b"], "instruction": ["x"]}, 400, "instruction", "invalid_value"),
    ({"input": ["a"], "instruction": 3}, 400, "instruction", "invalid_value"),
    ([1, 2], 400, None, "invalid_request"),
])
def test_bad_requests(body, status, param, code):
    with pytest.raises(ApiError) as e:
        parse(body)
    assert (e.value.status, e.value.param, e.value.code) == (status, param, code)
    err = e.value.body()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]


def test_item_limit_and_matryoshka():
    with pytest.raises(ApiError, match="3 items, more than this server's limit of 2"):
        parse({"input": ["a"] * 3}, limits=Limits(max_items=2))
    assert parse({"input": "a", "dimensions": 4}, matryoshka=True).dimensions == 4


def test_token_limit():
    check_tokens(10, Limits(max_request_tokens=10))
    with pytest.raises(ApiError) as e:
        check_tokens(11, Limits(max_request_tokens=10))
    assert e.value.code == "too_many_tokens" and e.value.status == 400


def test_base64_is_what_the_openai_client_decodes():
    v = np.random.default_rng(0).standard_normal(7).astype(np.float32)
    s = encode_vector(v, "base64")
    assert np.array_equal(np.frombuffer(base64.b64decode(s), dtype="<f4"), v)
    body = response_body(np.stack([v, -v]), "float", "m", 5)
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert [d["index"] for d in body["data"]] == [0, 1] and body["data"][1]["embedding"] == (-v).tolist()
    assert body["object"] == "list" and body["model"] == "m"
