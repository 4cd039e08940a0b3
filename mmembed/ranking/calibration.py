"""Calibrating the soft assignment, so that its confidence means what it says.

A photo's soft assignment ``q(x)`` comes from a kernel on the latent (a Student-t on the
distances to the centroids, a GMM posterior, ...). Nothing makes its confidence honest: the
multivariate Student-t of a well separated latent gives ``max q ≈ 1`` to nearly every photo,
including those its image-only latent places in the wrong cluster, so every photo of a
cluster gets the same fit. A single **temperature** ``T`` fixes the scale (Guo et al., "On
calibration of modern neural networks", 2017)::

    q_T(x)_k = exp(log q(x)_k / T) / Σ_j exp(log q(x)_j / T)

fitted on held-out posts by minimising the negative log-likelihood of the cluster their *full*
post (image and caption) is in, under the soft assignment of their *image alone*, which is
what a new photo gets. ``T > 1`` softens an over-confident q, ``T < 1`` sharpens an
under-confident one; the order of the clusters in each row never changes.

The **expected calibration error** (ECE) measures the result: bin the photos by their
confidence ``max_k q_k`` into ``bins`` equal-width bins, and average ``|accuracy − confidence|``
over the bins weighted by their share of photos, where accuracy is how often ``argmax q`` is
the full post's cluster.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

__all__ = ["LOG_FLOOR", "expected_calibration_error", "fit_temperature", "temper"]

#: log q below this is treated as this (q = 0 in float64 would otherwise stay 0 at any T).
LOG_FLOOR = -700.0
#: The temperatures searched, in log space: q may be sharpened or softened 100-fold at most.
T_RANGE = (0.01, 100.0)


def _log_q(log_q: ArrayLike) -> np.ndarray:
    x = np.asarray(log_q, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"log q must be an [n, K] array, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("log q contains NaN")
    return np.maximum(x, LOG_FLOOR)


def temper(log_q: ArrayLike, temperature: float) -> np.ndarray:
    """``q_T = softmax(log q / T)`` row by row, ``[n, K]`` float64 (see the module docstring)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return np.exp(log_softmax(_log_q(log_q) / temperature, axis=1))


def _nll(log_q: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    logp = log_softmax(log_q / temperature, axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(log_q: ArrayLike, labels: ArrayLike) -> float:
    """The ``T`` in :data:`T_RANGE` minimising the mean NLL of ``labels`` under ``q_T``.

    ``log_q``: ``[n, K]`` log soft assignments of held-out photos (their image alone);
    ``labels``: ``[n]`` the cluster of each one's full post. Returns 1.0 (no change) when there
    are fewer than two photos.
    """
    x = _log_q(log_q)
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have one entry per row of log q ({x.shape[0]}), "
                         f"got shape {y.shape}")
    if len(y) < 2:
        return 1.0
    if y.min() < 0 or y.max() >= x.shape[1]:
        raise ValueError(f"labels must be cluster ids in [0, {x.shape[1]}), got {y.min()}.."
                         f"{y.max()}")
    lo, hi = (math.log(t) for t in T_RANGE)
    best = minimize_scalar(lambda u: _nll(x, y, math.exp(u)), bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-4})
    return float(math.exp(best.x))


def expected_calibration_error(q: ArrayLike, labels: ArrayLike, bins: int = 15) -> float:
    """ECE of the soft assignments ``q`` ``[n, K]`` against ``labels`` (module docstring);
    NaN when there is no photo."""
    q = np.asarray(q, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if len(y) == 0:
        return math.nan
    confidence = q.max(axis=1)
    correct = (q.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
