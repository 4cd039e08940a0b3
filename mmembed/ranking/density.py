"""The fine-grained part of the fit: how densely a community posts around a photo.

The cluster-level fit, KL(p_c ‖ q(x)), only sees which cluster a photo is in, so two photos of
one cluster differ only by how confident q is. The seed's objective says more: maximise
E_r[log P(x | θ)], the photo's likelihood under the community. Relative to the whole corpus
that is the density ratio p(x | c) / p(x), which a k-nearest-neighbour estimate gives
directly: among the posts nearest to the photo (cosine similarity of the image embedding,
through the FAISS index), the community's share against its share of all posts. Weighting the
neighbours by a kernel of their similarity makes the estimate smooth, so photos never tie::

    w_j     = exp(−(1 − s_j) / h)                       s_j: similarity of neighbour j
    share   = (Σ_j w_j [j ∈ c] + a · π_c) / (Σ_j w_j + a)     π_c = n_c / N, a = pseudo-count
    lift(x) = log(share) − log(π_c)                      (nats)

``lift > 0``: the posts around the photo are more often the community's than posts are in
general (``exp(lift)`` times as often); ``lift < 0``: the community rarely posts there. The
pseudo-count ``a`` pulls a photo with no close neighbour at all towards 0 (no evidence), and
``lift`` is bounded by ``log(1 / π_c)`` above and about ``log(a / (W + a))`` below.

The bandwidth ``h`` is set from the corpus (:func:`bandwidth`): the median of ``1 − s`` to each
post's ``k``-th nearest neighbour, so the kernel spans about ``k`` posts wherever the corpus is.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["bandwidth", "local_lift"]


def bandwidth(similarities: ArrayLike, k: int) -> float:
    """``median_i (1 − s_i,k)``: the kernel width that spans about ``k`` neighbours.

    ``similarities``: ``[n, m]`` cosine similarities of ``n`` posts to their ``m >= k`` nearest
    other posts (themselves excluded), best first. Never below 1e-4, so the kernel is finite.
    """
    s = np.asarray(similarities, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < k or k < 1:
        raise ValueError(f"need [n, m >= k] similarities with k >= 1, got {s.shape}, k={k}")
    if s.shape[0] == 0:
        return 0.1
    return float(max(np.median(1.0 - s[:, k - 1]), 1e-4))


def local_lift(similarity: ArrayLike, member: ArrayLike, prior: float, bandwidth: float,
               pseudo: float = 1.0) -> np.ndarray:
    """``lift`` of each photo (module docstring), ``[n]`` in nats.

    ``similarity``: ``[n, k]`` cosine similarities to the photo's ``k`` nearest posts of the
    whole corpus (rows may be padded with ``-inf`` where fewer were found); ``member``:
    ``[n, k]`` whether each neighbour is the community's; ``prior``: the community's share of
    the corpus ``π_c`` in (0, 1]; ``bandwidth``: ``h`` > 0; ``pseudo``: ``a`` > 0.
    """
    s = np.asarray(similarity, dtype=np.float64)
    m = np.asarray(member, dtype=bool)
    if s.shape != m.shape or s.ndim != 2:
        raise ValueError(f"similarity and member must be [n, k] arrays of one shape, got "
                         f"{s.shape} and {m.shape}")
    if not 0 < prior <= 1:
        raise ValueError(f"prior (the community's share of all posts) must be in (0, 1], "
                         f"got {prior!r}")
    if not (bandwidth > 0 and pseudo > 0):
        raise ValueError(f"bandwidth and pseudo must be > 0, got {bandwidth!r}, {pseudo!r}")
    w = np.where(np.isfinite(s), np.exp(-(1.0 - np.where(np.isfinite(s), s, 0.0)) / bandwidth),
                 0.0)
    share = ((w * m).sum(axis=1) + pseudo * prior) / (w.sum(axis=1) + pseudo)
    return np.log(share) - np.log(prior)
