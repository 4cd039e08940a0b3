"""Content clusters of the post latents, behind one small interface (as BERTopic swaps clusterers).

After training every post has a latent vector z (float32 [N, d]). The bundle build groups the
latents into K content clusters; at ranking time a new photo, which has no caption, gets a
latent through the image-only path and needs a **soft assignment** q(z), a distribution over
the K clusters. Each method here is a small class with the same surface::

    c = make_clusterer("kmeans", k="auto", k_range=(3, 12), seed=0).fit(latent, posts)
    c.labels_                      # hard labels of the fitted posts [N]
    c.soft_assign(new_latent)      # [n, K], rows sum to 1, always finite
    arrays, params = c.state()     # -> clusters.npz (plain arrays) + JSON params
    c2 = load_clusterer(arrays, params)   # rebuilt for soft_assign, no pickle anywhere

**Cluster numbering is canonical.** A fit numbers its clusters in whatever order faiss,
scikit-learn or kmedoids produced them, so two fits that find the same partition (a resumed
training run, another thread count) could still call a cluster 0 in one and 3 in the other,
and every file that names clusters would differ. After every fit the clusters are renumbered by
the smallest post index they contain: cluster 0 holds post 0, cluster 1 the first post not in
cluster 0, and so on. The key depends on the partition alone (not on coordinates, which move a
little between equivalent fits), so the same partition of the same posts always gets the same
labels. Clusters that no post is assigned to (possible for k-means and DEC) come last, ordered
by the post with the highest soft assignment to them. Centroids, medoids, mixture components and
topics are permuted with the labels, so the saved state and the columns of ``soft_assign``
follow the same numbering (:meth:`Clusterer._canonicalise`).

Methods (``method`` name → class):

- ``kmeans``: faiss k-means on all posts; q by the Student-t kernel.
- ``gmm``: scikit-learn Gaussian mixture; q = posterior responsibilities.
- ``pam``: k-medoids with FasterPAM (the seed's method); q by the Student-t kernel on medoids.
- ``lda``: the seed's text baseline, LDA topics over captions and hashtags; new photos are
  placed through their nearest fitted posts in the latent space.

**Choosing K.** ``k`` is an int or ``"auto"`` (``None`` means auto too). Auto fits every k in
``k_range`` (inclusive) and keeps the best by the method's criterion, recorded in ``k_curve_``:

- kmeans, pam: silhouette of the hard labels (higher better; a seeded sample of 5000
  posts above that size).
- gmm: BIC (lower better), the likelihood-based criterion that fits a probabilistic model.
- lda: silhouette *of the topic labels in the latent space*, not held-out perplexity, which
  tends to improve steadily with K and agrees poorly with how coherent topics are (Chang et
  al., "Reading tea leaves", 2009). What ranking needs is topics that are coherent regions
  of the latent space, since that is how caption-less photos are mapped onto them.

With ``k_seeds`` > 1 every candidate K is fitted that many times (seeds ``seed, seed + 1, …``),
the K with the best *mean* score wins, and its best fit is kept. One k-means fit's local optimum
moves the silhouette of a contrastive latent by about as much as one more cluster does, so a
single fit's K wandered between seeds of the same bundle (Tux Paint: 10–14 for 15 categories
over 8 k-means seeds); the mean of 5 fits did not (EVALUATION.md, "Choosing K"). ``kmeans``
defaults to 5, the others to 1.

**Student-t soft assignment** (DEC, Xie et al. 2016, eq. 1), used by kmeans and pam::

    q_ij = (1 + ‖z_i − μ_j‖² / α)^(−(α+1)/2)  /  Σ_j' (1 + ‖z_i − μ_j'‖² / α)^(−(α+1)/2)

with α = 1 by default (a Cauchy kernel). Its heavy tails keep q informative far from every
centroid, and a photo very far from all of them gets a nearly uniform q rather than an
arbitrary one-hot. It is computed in log space, so q is finite for any finite latent.

That kernel (``kernel="dec"``) is the one-dimensional t density applied to the distance: it
ignores the latent's dimension d. In d dimensions a post lies about one cluster radius r from
its own centroid *and* about √(r² + D²) from a centroid D away, so in units of r the ratio of
the kernel values stays small, and q comes out soft (max q ≈ 0.5 for six clusters at
D ≈ 1.7 r in 32-d) even for clusters that never swap a post. ``kmeans`` and ``pam`` therefore
offer ``kernel="multivariate"``: the density of the d-dimensional Student-t with per-dimension
scale σ (``scaled``: σ = r/√d, the clusters' pooled within-cluster standard deviation)::

    q_ij ∝ (1 + ‖z_i − μ_j‖² / (α σ²))^(−(α+d)/2)

i.e. q is the posterior of an equal-weight mixture of isotropic t distributions centred on the
centroids (α → ∞: the Gaussian mixture posterior). It is as sharp as the clusters are
separated, whatever d is, so a community profile (the mean q of its posts) counts its posts'
clusters rather than smearing them. Deep Embedded Clustering, which also trains the encoder,
is a refinement stage of the model (:mod:`mmembed.models.dec`) on a k-means fit with DEC's
own kernel (its loss is defined on it).

Parameters are the constructor's, read by scikit-learn's ``get_params`` (every clusterer is a
``BaseEstimator``), and the class defaults are the defaults of ``conf/cluster/*.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mmembed.communities.clustering.base import (
    DEFAULT_K_RANGE,
    KERNELS,
    STATE_VERSION,
    Clusterer,
    choose_k,
    cluster_radius,
    kernel_scale,
    student_t_log_soft_assign,
    student_t_soft_assign,
)
from mmembed.communities.clustering.gmm import GMMClusterer
from mmembed.communities.clustering.kmeans import KMeansClusterer
from mmembed.communities.clustering.lda import LDAClusterer, post_text
from mmembed.communities.clustering.pam import PAMClusterer

__all__ = [
    "DEFAULT_K_RANGE", "KERNELS", "METHODS", "STATE_VERSION", "Clusterer", "GMMClusterer",
    "KMeansClusterer", "LDAClusterer", "PAMClusterer", "choose_k", "cluster_radius",
    "kernel_scale", "load_clusterer", "make_clusterer", "post_text", "student_t_log_soft_assign",
    "student_t_soft_assign",
]

METHODS: dict[str, type[Clusterer]] = {
    cls.name: cls for cls in (KMeansClusterer, GMMClusterer, PAMClusterer, LDAClusterer)
}


def make_clusterer(method: str, **kwargs: Any) -> Clusterer:
    """An unfitted clusterer by method name (kmeans, gmm, pam, lda) with its kwargs."""
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose one of "
                         f"{', '.join(METHODS)}")
    return METHODS[method](**kwargs)


def load_clusterer(arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Clusterer:
    """Rebuild the clusterer saved by ``state()``, by the method its params record."""
    method = params.get("method")
    if method not in METHODS:
        raise ValueError(f"cluster state names method {method!r}, which this version does not "
                         f"know (known: {', '.join(METHODS)}); rebuild the bundle")
    return METHODS[method].from_state(arrays, params)
