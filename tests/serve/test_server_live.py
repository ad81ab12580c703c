"""The real l2v-serve (Ray Serve, a private local instance) on a free loopback port, queried with the real
`openai` client and raw HTTP: vectors equal `encode`, bad requests get OpenAI-shaped 4xx errors while the
server keeps serving, concurrent clients share forward passes, SIGTERM stops everything. One server for
the whole module (Ray takes 30-60 s to start on a loaded 2-core machine)."""
import json
import signal
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("ray.serve")
openai = pytest.importorskip("openai")

from l2v.serve.process import ServerProcess  # noqa: E402
from l2v.serve.service import EmbeddingService, ServeConfig  # noqa: E402

TEXTS = ["hello world", "Padding tokens must never change the embedding of a real token.", "x",
         "The quick brown fox jumps over the lazy dog. " * 5]
ARGS = ["--max-batch-size", "8", "--batch-wait-ms", "50", "--matryoshka", "--max-items", "64",
        "--max-request-tokens", "400", "--num-cpus", "2"]


@pytest.fixture(scope="module")
def server(tiny_llama_artifact):
    srv = ServerProcess(tiny_llama_artifact, ARGS).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def svc(tiny_llama_artifact):
    return EmbeddingService(ServeConfig(str(tiny_llama_artifact), matryoshka=True))


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, json.loads(r.read())


def post_raw(url, data: bytes):
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_health_and_models(server, svc):
    assert get(server.url + "/health") == (200, {"status": "ok", "model": "tiny_llama"})
    status, body = get(server.url + "/v1/models")
    assert status == 200 and body["data"] == [svc.info()]
    assert get(server.url + "/v1/models/tiny_llama")[1]["id"] == "tiny_llama"


def test_openai_client_float_and_base64(client, svc):
    ref = svc.encode(TEXTS)
    r = client.embeddings.create(model="tiny_llama", input=TEXTS, encoding_format="float")
    np.testing.assert_allclose(np.array([d.embedding for d in r.data], dtype=np.float32), ref, atol=1e-5)
    assert r.usage.prompt_tokens == sum(it.n_tokens for it in svc.tokenize(TEXTS)) == r.usage.total_tokens
    r = client.embeddings.create(model="tiny_llama", input=TEXTS[0])  # the client asks for base64 by default
    np.testing.assert_allclose(np.array(r.data[0].embedding, dtype=np.float32), ref[0], atol=1e-5)


def test_instruction_and_dimensions(client, svc):
    r = client.embeddings.create(model="tiny_llama", input=TEXTS[:2], extra_body={"instruction": "Retrieve"})
    np.testing.assert_allclose(np.array([d.embedding for d in r.data]), svc.encode(TEXTS[:2], "Retrieve"), atol=1e-5)
    r = client.embeddings.create(model="tiny_llama", input=TEXTS[:2], dimensions=16)
    got = np.array([d.embedding for d in r.data])
    assert got.shape == (2, 16)
    np.testing.assert_allclose(got, svc.encode(TEXTS[:2], dimensions=16), atol=1e-5)


def test_bad_requests_get_4xx_and_the_server_keeps_serving(client, server):
    cases = [(openai.BadRequestError, dict(input=[])), (openai.BadRequestError, dict(input=["ok", 3])),
             (openai.BadRequestError, dict(input=["a"] * 65)),  # --max-items 64
             (openai.BadRequestError, dict(input=["word " * 60] * 10)),  # 10 x 64 tokens > --max-request-tokens
             (openai.BadRequestError, dict(input="a", extra_body={"instruction": "long " * 100})),  # > max_length
             (openai.NotFoundError, dict(input="a", model="nope"))]
    for error, kw in cases:
        with pytest.raises(error) as e:
            client.embeddings.create(**{"model": "tiny_llama", **kw})
        assert e.value.body["message"], kw  # the OpenAI error shape, parsed by the client
    status, body = post_raw(server.url + "/v1/embeddings", b"{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    status, body = post_raw(server.url + "/v1/embeddings", json.dumps({"input": "a", "encoding_format": "int8"}).encode())
    assert status == 400 and body["error"]["param"] == "encoding_format"
    assert get(server.url + "/stats")[1]["errors_4xx"] >= len(cases) + 2
    assert client.embeddings.create(model="tiny_llama", input="still serving").data


def test_concurrent_clients_share_forward_passes(server, svc):
    texts = [f"client {i} sends sentence number {j}" for i in range(16) for j in range(4)]
    ref = dict(zip(texts, svc.encode(texts)))
    before = get(server.url + "/stats")[1]
    errors, got = [], {}

    def worker(i):
        c = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        for j in range(4):
            t = f"client {i} sends sentence number {j}"
            try:
                got[t] = np.array(c.embeddings.create(model="tiny_llama", input=t, encoding_format="float")
                                  .data[0].embedding)
            except openai.OpenAIError as e:
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    for t in texts:
        np.testing.assert_allclose(got[t], ref[t], atol=1e-5)
    after = get(server.url + "/stats")[1]
    batches, batched = after["batches"] - before["batches"], after["batched_texts"] - before["batched_texts"]
    assert batched == 64 and batches < 64, (batches, batched)  # forward passes held texts of several clients
    assert after["max_batch"] <= 8  # --max-batch-size


def test_sigterm_stops_everything(server):
    """SIGTERM, what supervisors send and the signal `ray.init` takes over (Ctrl-C: test_server_sigint.py, slow)."""
    server.stop(signal.SIGTERM)  # the module's last test: the fixture's stop is then a no-op
    assert server.exit_code == 0, server.log_tail()
    assert server.leaked == [], f"processes left behind: {server.leaked}"
    assert "l2v-serve: stopping" in server.log_tail()
