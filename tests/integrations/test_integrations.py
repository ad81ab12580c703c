"""LangChain, LlamaIndex and MTEB over `l2v.load(...)`, each against the real package, offline. The query /
document prompts must be the ones sentence-transformers' encode_query / encode_document pick (the real
library is the oracle for that too). MTEB (a ~530 MB install) runs under `-m slow`."""
import numpy as np
import pytest

import l2v
from st_tiny import PARITY_TEXTS

TEXTS = [t for t in PARITY_TEXTS if t]


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32), atol=2e-6)


@pytest.fixture(scope="module")
def enc(st_gemma):
    return l2v.load(st_gemma[1])


def test_langchain_embeddings(enc, st_gemma):
    pytest.importorskip("langchain_core", reason="pip install -e '.[test]'")
    from langchain_core.embeddings import Embeddings

    from l2v.integrations.langchain import L2VEmbeddings

    emb = L2VEmbeddings(enc)
    assert isinstance(emb, Embeddings)
    docs, query = emb.embed_documents(TEXTS), emb.embed_query("what does the fox do?")
    assert isinstance(docs, list) and isinstance(docs[0], list) and isinstance(docs[0][0], float)
    _close(docs, enc.encode(TEXTS, prompt_name="document"))
    _close(query, enc.encode(["what does the fox do?"], prompt_name="query")[0])
    assert emb.embed_documents([]) == []
    import asyncio

    _close(asyncio.run(emb.aembed_query("what does the fox do?")), query)
    by_path = L2VEmbeddings(str(st_gemma[1]), variant="fp32", query_prompt="task: clustering | query: ")
    _close(by_path.embed_query("x"), enc.encode(["x"], prompt_name="Clustering")[0])


def test_roles_match_sentence_transformers(enc, st_gemma):
    st = pytest.importorskip("sentence_transformers", reason="pip install -e '.[test]'")
    pytest.importorskip("langchain_core", reason="pip install -e '.[test]'")
    from l2v.integrations.langchain import L2VEmbeddings

    model = st.SentenceTransformer(str(st_gemma[0]), device="cpu")
    emb = L2VEmbeddings(enc)
    ref_q, ref_d = model.encode_query(["what does the fox do?"]), model.encode_document(TEXTS)
    got_q, got_d = np.array([emb.embed_query("what does the fox do?")]), np.array(emb.embed_documents(TEXTS))
    for ref, got in ((ref_q, got_q), (ref_d, got_d)):
        cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
        assert cos.min() >= 0.9999


def test_llamaindex_embedding(enc):
    pytest.importorskip("llama_index.core", reason="pip install -e '.[test]'")
    from llama_index.core.base.embeddings.base import BaseEmbedding

    from l2v.integrations.llamaindex import L2VEmbedding

    emb = L2VEmbedding(enc, embed_batch_size=4)
    assert isinstance(emb, BaseEmbedding) and emb.model_name == str(enc.root)
    _close(emb.get_query_embedding("what does the fox do?"),
           enc.encode(["what does the fox do?"], prompt_name="query")[0])
    _close(emb.get_text_embedding_batch(TEXTS), enc.encode(TEXTS, prompt_name="document"))
    _close(emb.get_text_embedding(TEXTS[0]), enc.encode(TEXTS[:1], prompt_name="document")[0])
    import asyncio

    _close(asyncio.run(emb.aget_query_embedding("x")), enc.encode(["x"], prompt_name="query")[0])
    plain = L2VEmbedding(enc, query_prompt_name="document")
    _close(plain.get_query_embedding("x"), enc.encode(["x"], prompt_name="document")[0])


def test_bad_prompt_name_is_an_input_error(enc):
    pytest.importorskip("langchain_core", reason="pip install -e '.[test]'")
    from l2v.errors import InputError
    from l2v.integrations.langchain import L2VEmbeddings

    with pytest.raises(InputError, match="'nope' is not one of the model's prompts"):
        L2VEmbeddings(enc, query_prompt_name="nope")


@pytest.mark.slow
def test_mteb_encoder_protocol_and_a_real_evaluation(enc, tmp_path):
    """mteb's own STS task class, its data replaced by local pairs (no network), evaluated by
    `mteb.evaluate`: the main score equals the Spearman correlation we compute from `Encoder.encode`."""
    mteb = pytest.importorskip("mteb", reason="pip install -e '.[mteb]'")
    from datasets import Dataset, DatasetDict
    from scipy.stats import spearmanr

    from l2v.integrations.mteb import L2VMtebEncoder

    model = L2VMtebEncoder(enc, model_prompts={"STS": "task: sentence similarity | query: "})
    assert isinstance(model, mteb.models.models_protocols.EncoderProtocol)
    task = mteb.get_task("BIOSSES")
    s1 = ["The quick brown fox jumps over the lazy dog.", "Embedding models map text to vectors.", "hello",
          "Padding tokens must never change the embedding.", "天气很好", "A cat sat on the mat."]
    s2 = ["A fast fox leaps over a dog.", "Vectors come from embedding models.", "hello there",
          "The weather is nice today.", "今天天气很好", "Stock markets fell sharply."]
    score = [4.5, 4.0, 3.0, 0.5, 4.2, 0.0]
    task.dataset = DatasetDict({"test": Dataset.from_dict({"sentence1": s1, "sentence2": s2, "score": score})})
    task.data_loaded = True
    result = mteb.evaluate(model, task, cache=None, overwrite_strategy="always")
    got = result.task_results[0].scores["test"][0]["cosine_spearman"]
    prompt = "task: sentence similarity | query: "  # BIOSSES is an STS task: the task-type prompt applies
    a, b = enc.encode(s1, prompt=prompt), enc.encode(s2, prompt=prompt)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert got == pytest.approx(spearmanr(score, cos).statistic, abs=1e-6)
    meta = task.metadata
    _close(model.encode(s1, task_metadata=meta, prompt_type=mteb.types.PromptType.query), a)
