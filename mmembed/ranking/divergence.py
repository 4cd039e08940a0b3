"""Fit of a photo to a community: a divergence between two distributions over the K clusters.

The community **profile** ``p = p_c`` and a photo's **soft assignment** ``q = q(x)`` are both
distributions over the K content clusters. The *fit* is a divergence between them; **lower is
better** (0 means the photo's cluster mix is exactly the community's).

Both are smoothed first (:func:`smooth`), so that a cluster with zero mass never makes a
divergence infinite::

    p~ = (p + eps) / (1 + K * eps)        q~ = (q + eps) / (1 + K * eps)

Methods (``method=``, all in nats, all vectorised over n photos):

``"kl_pq"`` (default)
    ``KL(p~ || q~) = sum_k p~_k log(p~_k / q~_k)``: the seed's ``D(r || P)`` with the
    community as the reference distribution. Each term is weighted by the *community's* mass, so
    it penalises photos that put little mass on clusters the community uses heavily
    (mode-covering): a photo must cover what the community posts. Mass a photo puts on clusters
    the community never posts costs little.
``"kl_qp"``
    ``KL(q~ || p~) = sum_k q~_k log(q~_k / p~_k)``: weighted by the *photo's* mass, so it
    penalises photos that put mass on clusters the community never posts (mode-seeking): a photo
    that sits squarely in one of the community's clusters fits well even if the community also
    posts other things.
``"js"``
    Jensen–Shannon ``JS(p~, q~) = 1/2 KL(p~ || m) + 1/2 KL(q~ || m)`` with ``m = (p~ + q~) / 2``:
    symmetric, always finite (even with ``eps = 0``) and bounded by ``ln 2``.

The two KL directions can rank the same photos in opposite orders (see the tests); the
direction is a modelling choice (config ``rank.divergence``), not a detail.

``eps`` is the additive smoothing constant (pseudo-mass per cluster, relative to a total mass of
1). With ``eps > 0`` every divergence is finite, and a single zero costs at most about
``log(1 / eps)`` nats per unit of mass (``log(1000) ≈ 6.9`` for the default ``1e-3``).
``eps = 0`` disables smoothing, and the KL divergences may then be ``inf``.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import rel_entr

__all__ = ["FitMethod", "METHODS", "fit", "fit_contributions", "kl", "smooth"]

FitMethod = Literal["kl_pq", "kl_qp", "js"]
METHODS: tuple[str, ...] = get_args(FitMethod)

_SUM_TOL = 1e-3  # how far from 1 an input distribution's sum may be (float32 soft assignments)


def smooth(p: ArrayLike, eps: float = 1e-3) -> np.ndarray:
    """Additive smoothing of distributions along the last axis::

        smooth(p)_k = (p_k + eps) / (1 + K * eps)

    Works on one distribution ``[K]`` or a batch ``[n, K]``. If ``p`` sums to 1 so does the
    result, and every entry is at least ``eps / (1 + K * eps) > 0``: zero mass in a cluster can
    no longer make ``log(p / q)`` infinite. ``eps = 0`` returns ``p`` unchanged (as float64).
    """
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError("smooth expects a distribution over K clusters, got a scalar")
    k = arr.shape[-1]
    return (arr + eps) / (1.0 + k * eps)


def kl(p: ArrayLike, q: ArrayLike) -> np.ndarray:
    """Kullback–Leibler divergence ``KL(p || q) = sum_k p_k log(p_k / q_k)`` in nats.

    Summed over the last axis, broadcasting the others (``[K]`` with ``[n, K]`` gives ``[n]``).
    Convention ``0 log(0 / q) = 0``; a cluster with ``p_k > 0 = q_k`` gives ``inf``. No
    smoothing is done here: pass ``smooth(p), smooth(q)`` for finite values.
    """
    return np.sum(rel_entr(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)),
                  axis=-1)


def fit_contributions(profile: ArrayLike, q: ArrayLike, method: FitMethod = "kl_pq",
                      eps: float = 1e-3) -> np.ndarray:
    """Per-cluster terms of the fit, ``[n, K]``; each row sums to :func:`fit` of that photo.

    With ``p~, q~`` the smoothed profile and soft assignments (see the module docstring):

    - ``kl_pq``: ``p~_k log(p~_k / q~_k)``
    - ``kl_qp``: ``q~_k log(q~_k / p~_k)``
    - ``js``:    ``1/2 p~_k log(p~_k / m_k) + 1/2 q~_k log(q~_k / m_k)``, ``m = (p~ + q~) / 2``

    The KL terms are signed: a positive term is a cluster where the reference distribution
    (the community for ``kl_pq``, the photo for ``kl_qp``) has more mass than the other, i.e. a
    cluster that makes the fit worse; the largest terms are "the clusters that drive the fit".
    The JS terms are all >= 0 (log-sum inequality).

    Args:
        profile: the community profile ``p_c``, ``[K]``, non-negative, summing to 1.
        q: soft assignments, ``[n, K]`` (or ``[K]`` for one photo), rows summing to 1.
        method: ``"kl_pq"``, ``"kl_qp"`` or ``"js"``.
        eps: smoothing constant, >= 0.
    """
    p_s, q_s = _prepare(profile, q, method, eps)
    if method == "kl_pq":
        return rel_entr(p_s, q_s)
    if method == "kl_qp":
        return rel_entr(q_s, p_s)
    m = 0.5 * (p_s + q_s)
    return 0.5 * rel_entr(p_s, m) + 0.5 * rel_entr(q_s, m)


def fit(profile: ArrayLike, q: ArrayLike, method: FitMethod = "kl_pq",
        eps: float = 1e-3) -> np.ndarray:
    """Fit of n photos to one community, ``[n]``; lower is better, 0 is a perfect match.

    ``kl_pq`` (default): ``KL(p~_c || q~(x))``, mode-covering: a photo is penalised for putting
    little mass on clusters the community uses heavily. ``kl_qp``: ``KL(q~(x) || p~_c)``,
    mode-seeking: a photo is penalised for putting mass on clusters the community never posts.
    ``js``: Jensen–Shannon, symmetric and ``<= ln 2``. Here ``p~ = smooth(p, eps)`` and
    ``q~ = smooth(q, eps)``, i.e. ``(x + eps) / (1 + K eps)``, which keeps every value finite
    for ``eps > 0``. See the module docstring for the full formulas.

    Inputs must be non-negative and sum to 1 along the last axis (within 1e-3, for float32 soft
    assignments); they are renormalised exactly before smoothing. The result is clipped at 0
    against rounding (a divergence is never negative), so it equals
    ``fit_contributions(...).sum(-1)`` up to ~1e-15.

    Args:
        profile: the community profile ``p_c``, ``[K]``.
        q: soft assignments, ``[n, K]`` (or ``[K]`` for one photo, giving ``[1]``).
        method: ``"kl_pq"``, ``"kl_qp"`` or ``"js"``.
        eps: smoothing constant, >= 0 (0 disables smoothing; KL may then be ``inf``).
    """
    return np.maximum(fit_contributions(profile, q, method, eps).sum(axis=-1), 0.0)


def _prepare(profile: ArrayLike, q: ArrayLike, method: str,
             eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Validate, renormalise and smooth; returns ``p~ [K]`` and ``q~ [n, K]``."""
    if method not in METHODS:
        raise ValueError(f"unknown fit method {method!r}; expected one of {METHODS}")
    p = np.asarray(profile, dtype=np.float64)
    qs = np.asarray(q, dtype=np.float64)
    if p.ndim != 1 or p.shape[0] == 0:
        raise ValueError(f"profile must be a 1-D distribution over K >= 1 clusters, "
                         f"got shape {p.shape}")
    if qs.ndim == 1:
        qs = qs[None, :]
    if qs.ndim != 2 or qs.shape[1] != p.shape[0]:
        raise ValueError(f"q must have shape [n, K={p.shape[0]}] (or [K]), got {qs.shape}")
    p = _normalised(p, "profile")
    qs = _normalised(qs, "q")
    return smooth(p, eps), smooth(qs, eps)


def _normalised(x: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    if np.any(x < 0):
        raise ValueError(f"{name} contains negative values; it must be a distribution")
    total = x.sum(axis=-1, keepdims=True)
    if np.any(np.abs(total - 1.0) > _SUM_TOL):
        worst = float(np.max(np.abs(total - 1.0)))
        raise ValueError(f"{name} must sum to 1 over the clusters (off by up to {worst:.3g})")
    return x / total
