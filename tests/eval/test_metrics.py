"""Metrics on constructed cases with known answers."""
import math

import numpy as np
import pytest

from l2v.errors import InputError
from l2v.eval import metrics


def test_cosine_stats_rowwise():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    s = metrics.cosine_stats(a, b)
    assert s["min"] == pytest.approx(0.0) and s["mean"] == pytest.approx(2 / 3)
    with pytest.raises(InputError):
        metrics.cosine_stats(a, b[:2])


def test_top_k_excludes_self():
    pts = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.1, 0.99]])
    nn = metrics.top_k_neighbours(pts, 1)
    assert nn[:, 0].tolist() == [1, 0, 3, 2]


def test_neighbour_recall_known_answer():
    # points on the unit circle; nearest neighbour by angle
    ang_ref = np.array([0.0, 0.1, 0.25, 1.5, 1.55])
    ang_var = np.array([0.0, 0.2, 0.15, 1.5, 1.55])
    ref = np.c_[np.cos(ang_ref), np.sin(ang_ref)]
    var = np.c_[np.cos(ang_var), np.sin(ang_var)]
    # ref: 0->1, 1->0, 2->1, 3->4, 4->3;  var: 0->2, 1->2, 2->1, 3->4, 4->3  => 3 of 5 agree
    assert metrics.neighbour_recall_at_k(ref, var, 1) == pytest.approx(3 / 5)
    assert metrics.neighbour_recall_at_k(ref, ref, 2) == 1.0


def test_same_class_retrieval_recall_and_ndcg_known_case():
    ang = np.array([0.0, 0.1, 0.25, 0.45])  # points on the unit circle: rank = angular distance
    emb = np.c_[np.cos(ang), np.sin(ang)]
    labels = ["a", "b", "a", "a"]
    # q0: neighbours 1,2,3 -> relevant [0,1,1]; q1 (only b) has nothing to find -> excluded;
    # q2: 1 (.15), 3 (.2), 0 (.25) -> [0,1,1]; q3: 2 (.2), 1 (.35), 0 (.45) -> [1,0,1]
    d = [1 / math.log2(i + 2) for i in range(3)]
    ideal = d[0] + d[1]  # two relevant items available per a-query
    ndcg = np.mean([(d[1] + d[2]) / ideal, (d[1] + d[2]) / ideal, (d[0] + d[2]) / ideal])
    res = metrics.same_class_retrieval(emb, labels, k=3)
    assert res["recall"] == pytest.approx(1.0)  # both available same-class items are within the top 3
    assert res["ndcg"] == pytest.approx(ndcg)
    res1 = metrics.same_class_retrieval(emb, labels, k=1)
    assert res1["recall"] == pytest.approx(1 / 3) and res1["ndcg"] == pytest.approx(1 / 3)


def test_classifiers_and_clustering_on_separable_data():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 5
    emb = np.concatenate([c + 0.1 * rng.standard_normal((10, 8)) for c in centres])
    labels = [i // 10 for i in range(30)]
    assert metrics.knn_accuracy(emb, labels, k=3) == 1.0
    assert metrics.logreg_accuracy(emb, labels) == 1.0
    assert metrics.kmeans_v_measure(emb, labels) == pytest.approx(1.0)
    with pytest.raises(InputError, match="smallest class"):
        metrics.logreg_accuracy(emb[:11], labels[:11])


def test_human_correlation_uses_the_upper_triangle():
    emb = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    cos = emb @ emb.T
    human = np.triu(cos) * 2 + 0.1  # a monotone map of cosine in the upper triangle, junk below
    human[np.tril_indices(3, -1)] = [-5, 7, 0]
    r = metrics.human_similarity_correlation(emb, human)
    assert r["pearson"] == pytest.approx(1.0) and r["spearman"] == pytest.approx(1.0)
