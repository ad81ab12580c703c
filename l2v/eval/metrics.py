"""Embedding metrics: fidelity between two embeddings of the same texts, and task quality.

numpy only at import; scipy and scikit-learn are imported inside the functions that need them.
Every function takes raw embeddings `[N, D]` and normalises where cosine is meant.
"""
from __future__ import annotations

import numpy as np

from l2v.errors import InputError


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise InputError(f"embedding matrices must have the same 2-D shape, got {a.shape} and {b.shape}")
    return a, b


def cosine_rowwise(a, b) -> np.ndarray:
    a, b = _pair(a, b)
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)


def cosine_stats(a, b) -> dict:
    """Mean and min cosine between row i of `a` and row i of `b`."""
    c = cosine_rowwise(a, b)
    return {"mean": float(c.mean()), "min": float(c.min())}


def top_k_neighbours(emb, k: int) -> np.ndarray:
    """`[N, k]` indices of each row's k most cosine-similar other rows (self excluded); ties by index."""
    e = l2_normalize(emb)
    n = e.shape[0]
    if not 0 < k < n:
        raise InputError(f"k={k} needs 0 < k < N={n}")
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def neighbour_recall_at_k(reference, variant, k: int) -> float:
    """Mean over rows of |kNN_ref(i) ∩ kNN_var(i)| / k: how much of the reference's neighbourhood the
    variant keeps (1.0 = identical retrieval)."""
    reference, variant = _pair(reference, variant)
    r, v = top_k_neighbours(reference, k), top_k_neighbours(variant, k)
    return float(np.mean([len(set(r[i]) & set(v[i])) / k for i in range(len(r))]))


def same_class_retrieval(emb, labels, k: int = 10) -> dict:
    """Each text queries the rest; relevant = same label.

    recall@k = relevant in the top k / min(k, relevant available) (capped recall, so a class larger
    than k can still reach 1.0); nDCG@k with binary gains and the ideal ranking = all relevant first.
    """
    labels = np.asarray(labels)
    if len(labels) != len(emb):
        raise InputError(f"{len(labels)} labels for {len(emb)} embeddings")
    nn = top_k_neighbours(emb, k)
    rel = labels[nn] == labels[:, None]  # [N, k]
    available = np.array([np.sum(labels == lab) - 1 for lab in labels])
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = rel @ discounts
    ideal = np.array([discounts[: min(k, a)].sum() for a in available])
    ok = available > 0
    recall = rel.sum(1)[ok] / np.minimum(k, available[ok])
    return {"recall": float(recall.mean()), "ndcg": float((dcg[ok] / ideal[ok]).mean())}


def _folds(labels, folds: int) -> int:
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    if len(counts) < 2:
        raise InputError("classification needs at least two classes")
    n = min(folds, int(counts.min()))
    if n < 2:
        raise InputError(f"the smallest class has {int(counts.min())} member(s); cross-validation needs 2")
    return n


def knn_accuracy(emb, labels, k: int = 10, folds: int = 5, seed: int = 0) -> float:
    """Stratified k-fold accuracy of a cosine k-nearest-neighbour classifier."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    cv = StratifiedKFold(_folds(labels, folds), shuffle=True, random_state=seed)
    n_train = len(labels) - len(labels) // cv.get_n_splits()
    clf = KNeighborsClassifier(n_neighbors=min(k, n_train), metric="cosine")
    return float(cross_val_score(clf, l2_normalize(emb), np.asarray(labels), cv=cv).mean())


def logreg_accuracy(emb, labels, folds: int = 5, seed: int = 0) -> float:
    """Stratified k-fold accuracy of standardised logistic regression (LLM hidden states have a few
    huge dimensions; standardising keeps the solver well conditioned)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cv = StratifiedKFold(_folds(labels, folds), shuffle=True, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(cross_val_score(clf, l2_normalize(emb), np.asarray(labels), cv=cv).mean())


def kmeans_v_measure(emb, labels, seed: int = 0) -> float:
    """V-measure of k-means (k = number of classes) on the normalised embeddings."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    labels = np.asarray(labels)
    k = len(np.unique(labels))
    pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(l2_normalize(emb))
    return float(v_measure_score(labels, pred))


def human_similarity_correlation(emb, human) -> dict:
    """Pearson and Spearman between embedding cosine and a human similarity matrix, over the upper
    triangle without the diagonal (each unordered pair once)."""
    from scipy.stats import pearsonr, spearmanr

    human = np.asarray(human, dtype=np.float64)
    n = len(emb)
    if human.shape != (n, n):
        raise InputError(f"human similarity is {human.shape}, embeddings have {n} rows")
    e = l2_normalize(emb)
    iu = np.triu_indices(n, 1)
    cos, hum = (e @ e.T)[iu], human[iu]
    return {"pearson": float(pearsonr(cos, hum)[0]), "spearman": float(spearmanr(cos, hum)[0])}
