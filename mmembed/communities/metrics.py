"""How good are the content clusters? Internal scores, stability, and scores against planted truth.

Everything here is a pure function of arrays (plus, for :func:`stability`, a factory of
clusterers): nothing is written, nothing global is changed. Scores that are undefined for the
input (a single cluster, say) are NaN rather than an exception, so a sweep over K can record them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import sklearn
from sklearn.metrics import (
    adjusted_rand_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)

from mmembed.stats import total_variation

SILHOUETTE_SAMPLE = 5000
#: Memory (MB) of one block of pairwise distances in :func:`silhouette`.
SILHOUETTE_BLOCK_MB = 32
#: Rows of the latent a block in :func:`calinski_harabasz` (bounds its float64 temporaries).
DISPERSION_BLOCK = 4096


def _labels_array(labels: Any, n: int | None = None, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array with one label per post, "
                         f"got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but there are {n} posts; "
                         "pass one label per row of the latent matrix")
    return arr


def silhouette(latent: np.ndarray, labels: Any, *, seed: int = 0,
               sample_size: int | None = SILHOUETTE_SAMPLE) -> float:
    """Mean silhouette of ``labels`` in ``latent`` (Euclidean), on a seeded sample of posts.

    s(i) = (b_i − a_i) / max(a_i, b_i), with a_i the mean distance to the post's own cluster and
    b_i the mean distance to the nearest other cluster; the score is the mean over posts, in
    [−1, 1], higher is better. The exact score costs O(N²) time, so above ``sample_size`` posts
    it is computed on ``sample_size`` posts drawn without replacement with ``seed``. The sample
    depends only on (N, seed, sample_size), so scores of different labelings of the same latents
    (a sweep over K) are computed on the same posts and are comparable.

    Returns NaN when the silhouette is undefined: fewer than 2 clusters, or as many clusters as
    posts, in the sample.
    """
    x = np.asarray(latent)
    if x.ndim != 2:
        raise ValueError(f"latent must be a 2-D array [n, d], got shape {x.shape}")
    y = _labels_array(labels, x.shape[0])
    n = x.shape[0]
    if sample_size is not None and n > sample_size:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=sample_size, replace=False))
        x, y = x[idx], y[idx]
    n_labels = np.unique(y).size
    if n_labels < 2 or n_labels >= y.shape[0]:
        return math.nan
    # scikit-learn computes the distances in blocks of up to `working_memory` MB (1 GB by
    # default: the whole 5000 × 5000 matrix at once); smaller blocks give the same score
    with sklearn.config_context(working_memory=SILHOUETTE_BLOCK_MB):
        return float(silhouette_score(x, y, metric="euclidean"))


def calinski_harabasz(latent: np.ndarray, labels: Any) -> float:
    """Calinski–Harabasz score: ``[B / (K − 1)] / [W / (N − K)]``, ``B`` the between-cluster
    dispersion ``Σ_k n_k ‖μ_k − μ‖²`` and ``W`` the within ``Σ_i ‖x_i − μ_{y_i}‖²``.

    scikit-learn's ``calinski_harabasz_score`` gives the same score, but subtracts each
    cluster's mean from a float64 copy of its rows (~2× the latent's memory at once); this
    sums in float64 :data:`DISPERSION_BLOCK` rows at a time. NaN unless 2 ≤ K < N."""
    x = np.asarray(latent)
    y = _labels_array(labels, x.shape[0])
    groups, inverse = np.unique(y, return_inverse=True)
    n, k = x.shape[0], groups.size
    if not 2 <= k < n:
        return math.nan
    counts = np.bincount(inverse, minlength=k).astype(np.float64)
    sums = np.zeros((k, x.shape[1]))
    for start in range(0, n, DISPERSION_BLOCK):
        block = x[start:start + DISPERSION_BLOCK].astype(np.float64)
        member = np.arange(k) == inverse[start:start + DISPERSION_BLOCK, None]  # [b, K]
        sums += member.T.astype(np.float64) @ block  # each cluster's sum, as a matrix product
    means = sums / counts[:, None]
    centre = sums.sum(axis=0) / n
    between = float(np.sum(counts * np.sum((means - centre) ** 2, axis=1)))
    within = 0.0
    for start in range(0, n, DISPERSION_BLOCK):
        block = x[start:start + DISPERSION_BLOCK].astype(np.float64)
        within += float(np.sum((block - means[inverse[start:start + DISPERSION_BLOCK]]) ** 2))
    return 1.0 if within == 0.0 else between * (n - k) / (within * (k - 1.0))


def cluster_metrics(latent: np.ndarray, labels: Any, seed: int = 0,
                    sample_size: int | None = SILHOUETTE_SAMPLE) -> dict[str, float]:
    """Internal (truth-free) quality of a hard clustering of the latents.

    - ``silhouette``: see :func:`silhouette` (sampled above ``sample_size`` posts); higher better.
    - ``davies_bouldin``: mean over clusters of max_j (s_i + s_j) / ‖μ_i − μ_j‖ with s the mean
      distance to the centroid; ≥ 0, lower better. O(N·K), so never sampled.
    - ``calinski_harabasz``: between- over within-cluster dispersion, scaled by (N−K)/(K−1);
      higher better (:func:`calinski_harabasz`, in blocks).
    - ``n_clusters``: distinct labels present.

    Scores undefined for the input (fewer than 2 clusters) are NaN.
    """
    x = np.asarray(latent)
    if x.ndim != 2:
        raise ValueError(f"latent must be a 2-D array [n, d], got shape {x.shape}")
    y = _labels_array(labels, x.shape[0])
    n_clusters = int(np.unique(y).size)
    defined = 2 <= n_clusters < x.shape[0]
    return {
        "silhouette": silhouette(x, y, seed=seed, sample_size=sample_size),
        "davies_bouldin": float(davies_bouldin_score(x, y)) if defined else math.nan,
        "calinski_harabasz": calinski_harabasz(x, y) if defined else math.nan,
        "n_clusters": n_clusters,
    }


def stability(clusterer: Any, latent: np.ndarray, posts: Sequence[Any] | None = None,
              seeds: Sequence[int] = (0, 1, 2)) -> float:
    """Mean pairwise adjusted Rand index between the labels of fits with different seeds.

    Each fit is an unfitted copy of ``clusterer`` (:func:`sklearn.base.clone`, with K fixed to
    the one it found) with another ``seed``, on the same ``latent`` (and ``posts``); the ARI is
    averaged over all pairs of seeds. 1.0 means every seed finds the same partition (up to
    renaming clusters); ≈ 0 means agreement no better than chance.
    """
    from sklearn.base import clone

    seeds = list(seeds)
    if len(seeds) < 2:
        raise ValueError(f"stability needs at least 2 seeds to compare, got {seeds}")
    k = getattr(clusterer, "n_clusters_", None) or clusterer.k
    runs = []
    for seed in seeds:
        fit = clone(clusterer).set_params(k=k, seed=seed).fit(latent, posts)
        runs.append(np.asarray(fit.labels_))
    return float(np.mean([adjusted_rand_score(a, b) for a, b in combinations(runs, 2)]))


def truth_metrics(labels: Any, truth_labels: Any) -> dict[str, float]:
    """Agreement of cluster labels with planted topics: NMI (arithmetic mean normalisation) and ARI.

    NMI = I(C; T) / ((H(C) + H(T)) / 2), in [0, 1]; ARI is the Rand index corrected for chance,
    1 for identical partitions and ≈ 0 for random ones. Both ignore how clusters are numbered.
    """
    y = _labels_array(labels)
    t = _labels_array(truth_labels, y.shape[0], name="truth_labels")
    if y.shape[0] == 0:
        raise ValueError("truth_metrics needs at least one post, got empty labels")
    return {
        "nmi": float(normalized_mutual_info_score(t, y, average_method="arithmetic")),
        "ari": float(adjusted_rand_score(t, y)),
    }


def chance_nmi(labels: Any, truth_labels: Any, repeats: int = 100, seed: int = 0) -> float:
    """The NMI chance alone reaches with these cluster sizes: ``labels`` shuffled across the
    posts against ``truth_labels``, averaged over ``repeats`` shuffles. NMI is biased upward on
    few posts, so a held-out NMI on 50 posts means little without it."""
    y = _labels_array(labels)
    rng = np.random.default_rng(seed)
    return float(np.mean([truth_metrics(rng.permutation(y), truth_labels)["nmi"]
                          for _ in range(repeats)]))


def subsample_nmi(labels: Any, truth_labels: Any, size: int, repeats: int = 200,
                  seed: int = 0) -> float:
    """The NMI of ``labels`` against ``truth_labels`` on random samples of ``size`` posts
    (without replacement), averaged over ``repeats`` samples. NMI's upward bias depends on the
    number of posts, so a training NMI measured at the held-out set's size compares with the
    held-out NMI without that bias: what differs then is the posts, not how many there are."""
    y = _labels_array(labels)
    t = _labels_array(truth_labels, y.shape[0], name="truth_labels")
    if not 1 <= size <= y.shape[0]:
        raise ValueError(f"size must be between 1 and the {y.shape[0]} posts, got {size}")
    rng = np.random.default_rng(seed)
    picks = (rng.choice(y.shape[0], size, replace=False) for _ in range(repeats))
    return float(np.mean([truth_metrics(y[i], t[i])["nmi"] for i in picks]))


def _as_distribution(values: Any, name: str) -> np.ndarray:
    p = np.asarray(values, dtype=np.float64)
    if p.ndim != 1 or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"{name} must be a finite, non-negative vector with a positive sum, "
                         f"got {values!r}")
    return p / p.sum()


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def profile_tv_error(profiles: Mapping[str, Any],
                     truth_mixtures: Mapping[str, Mapping[Hashable, float]],
                     labels: Any, topics_of_posts: Any) -> dict[str, Any]:
    """Total-variation error of each community profile against its planted topic mixture.

    A profile p_c lives on the K content clusters, the planted mixture on the true topics, and
    these are different label sets. They are compared on topics:

    1. From the fitted posts (``labels[i]`` = cluster, ``topics_of_posts[i]`` = true topic), the
       confusion matrix gives P(topic | cluster) = n(cluster, topic) / n(cluster). A cluster
       with no fitted post borrows the overall topic frequencies P(topic) (no evidence either
       way).
    2. The profile becomes a distribution over topics: p(topic) = Σ_c p_c · P(topic | c).
    3. TV(p, truth) = ½ Σ_topic |p(topic) − truth(topic)|, in [0, 1].

    So a clustering that finds the topics under other names scores 0, and merged or impure
    clusters cost what their mixing costs. Profiles and mixtures are normalised to sum 1;
    topics named only in a mixture get P(topic | c) = 0 and count fully.

    Returns ``per_community`` (name → TV) for the communities in both mappings, their ``mean``
    and ``max``, ``missing`` (names in only one mapping), ``topics`` (the topic order) and
    ``topic_given_cluster`` (K × T nested list), all JSON-serialisable.
    """
    y = _labels_array(labels)
    topics_arr = _labels_array(topics_of_posts, y.shape[0], name="topics_of_posts")
    if y.shape[0] == 0:
        raise ValueError("profile_tv_error needs the fitted posts' labels and topics, got none")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise ValueError("labels must be non-negative integer cluster indices")
    common = [name for name in profiles if name in truth_mixtures]
    missing = sorted(set(profiles).symmetric_difference(truth_mixtures), key=str)
    if not common:
        raise ValueError("no community has both a profile and a planted mixture; profile names "
                         f"{sorted(profiles, key=str)} vs truth names "
                         f"{sorted(truth_mixtures, key=str)}")
    prof = {name: _as_distribution(profiles[name], f"profile {name!r}") for name in common}
    sizes = {p.shape[0] for p in prof.values()}
    if len(sizes) != 1:
        raise ValueError(f"profiles have different numbers of clusters: {sorted(sizes)}")
    k = sizes.pop()
    if y.max() >= k:
        raise ValueError(f"labels go up to cluster {int(y.max())} but profiles cover {k} clusters")

    post_topics = [_plain(t) for t in topics_arr.tolist()]
    topic_set = set(post_topics)
    for name in common:
        topic_set.update(_plain(t) for t in truth_mixtures[name])
    topics = sorted(topic_set, key=str)
    col = {t: j for j, t in enumerate(topics)}

    counts = np.zeros((k, len(topics)))
    np.add.at(counts, (y, np.array([col[t] for t in post_topics])), 1.0)
    marginal = counts.sum(0) / counts.sum()
    n_per_cluster = counts.sum(1, keepdims=True)
    topic_given_cluster = np.where(n_per_cluster > 0, counts / np.maximum(n_per_cluster, 1.0),
                                   marginal[None, :])

    per_community = {}
    for name in common:
        truth = np.zeros(len(topics))
        for topic, weight in truth_mixtures[name].items():
            truth[col[_plain(topic)]] += float(weight)
        truth = _as_distribution(truth, f"truth mixture {name!r}")
        p_topic = prof[name] @ topic_given_cluster
        per_community[name] = total_variation(p_topic, truth)
    errors = list(per_community.values())
    return {
        "per_community": per_community,
        "mean": float(np.mean(errors)),
        "max": float(np.max(errors)),
        "missing": missing,
        "topics": topics,
        "topic_given_cluster": topic_given_cluster.tolist(),
    }
