"""The score: a blend of fit and predicted engagement over a set of candidate photos.

Fit (lower is better, :mod:`mmembed.ranking.divergence`) and predicted engagement (higher is
better, log engagement rate) live on unrelated scales, so both are standardised over the
*candidate set* (the photos being ranked together) before they are blended with one weight
``alpha`` (config ``rank.alpha``)::

    z(x)  = (x - mean(x)) / std(x)                       over the n candidates
    score = (1 - alpha) * (-z(fit)) + alpha * z(engagement)

Higher is better. ``alpha = 0`` ranks by fit alone, ``alpha = 1`` by engagement alone. Because
both terms are standardised, the score is unchanged by any increasing affine rescaling of either
input (``a * x + b``, ``a > 0``), and scores are only comparable within one candidate set.

Helpers for reporting: :func:`rank_order` (1 = best), :func:`percentile_among` ("beats 83% of
this community's posts") and :func:`expected_likes` (a log rate back to a count).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["expected_likes", "percentile_among", "rank_order", "score", "standardize"]

_CONSTANT_RTOL = 1e-10  # std below this times max|x| counts as "constant" (rounding only)


def standardize(x: ArrayLike) -> np.ndarray:
    """z-scores over the candidate set: ``(x - mean(x)) / std(x)`` (population std, ddof=0).

    Returns zeros when there is nothing to compare: fewer than two candidates, or values that
    are constant (``std <= 1e-10 * max|x|``, so that rounding noise in equal values is not blown
    up to +-1). Raises ``ValueError`` on NaN/inf (an unsmoothed infinite fit, a missing
    prediction): they would silently turn every score into NaN.

    The sums are exactly rounded (``math.fsum``), so the z-scores do not depend on the order
    of the candidates: the same photos listed in another order get the very same scores
    (a plain float sum differs in the last bit for most orders).
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"standardize expects a 1-D array over candidates, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("cannot standardise NaN or inf values (is the fit smoothed, eps > 0?)")
    if arr.size < 2:
        return np.zeros_like(arr)
    centred = arr - math.fsum(arr) / arr.size
    std = math.sqrt(math.fsum(centred**2) / arr.size)
    if std <= _CONSTANT_RTOL * float(np.max(np.abs(arr))) or std == 0.0:
        return np.zeros_like(arr)
    return centred / std


def score(fit: ArrayLike, engagement: ArrayLike, alpha: float) -> np.ndarray:
    """Blend of fit and predicted engagement, one value per candidate; higher is better::

        score = (1 - alpha) * (-z(fit)) + alpha * z(engagement)

    where ``z`` is :func:`standardize` over the candidate set. ``alpha = 0``: pure fit (the
    lowest divergence scores highest); ``alpha = 1``: pure engagement; in between, ``alpha`` is
    the weight of engagement, in standard deviations.

    Args:
        fit: ``[n]`` divergence of each candidate to the community (lower is better).
        engagement: ``[n]`` predicted log engagement rate of each candidate (higher is better).
        alpha: weight of engagement, in ``[0, 1]`` (config ``rank.alpha``).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"rank.alpha must be a number in [0, 1], got {alpha!r}")
    alpha = float(alpha)
    if not (0.0 <= alpha <= 1.0):  # also rejects NaN
        raise ValueError(f"rank.alpha must be in [0, 1] (0 = pure fit, 1 = pure engagement), "
                         f"got {alpha}")
    f = np.asarray(fit, dtype=np.float64)
    e = np.asarray(engagement, dtype=np.float64)
    if f.shape != e.shape or f.ndim != 1:
        raise ValueError(f"fit and engagement must be 1-D arrays of the same length, got "
                         f"{f.shape} and {e.shape}")
    return (1.0 - alpha) * -standardize(f) + alpha * standardize(e)


def percentile_among(values: ArrayLike, reference: ArrayLike) -> np.ndarray:
    """Percentile of each value within a reference sample, in ``[0, 100]``::

        pct(v) = 100 * (#{r < v} + 1/2 #{r == v}) / len(reference)

    e.g. a candidate's predicted engagement among the community's posts: "beats 83% of this
    community's posts". Ties count half, so a value equal to every reference value is at 50.
    Returns an array of the shape of ``values``. Raises ``ValueError`` on an empty reference or
    on NaN (which has no place in an order).
    """
    v = np.asarray(values, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64).ravel()
    if ref.size == 0:
        raise ValueError("percentile_among needs a non-empty reference sample")
    if np.isnan(v).any() or np.isnan(ref).any():
        raise ValueError("percentile_among: values and reference must not contain NaN")
    ref = np.sort(ref)
    below = np.searchsorted(ref, v, side="left")
    below_or_equal = np.searchsorted(ref, v, side="right")
    return 100.0 * (below + 0.5 * (below_or_equal - below)) / ref.size


def expected_likes(log_rate: ArrayLike, followers: ArrayLike) -> np.ndarray:
    """Turn a (predicted) log engagement rate back into a count: ``followers * exp(log_rate)``.

    The engagement target is ``e = log((likes + comments + 1) / followers)``
    (:func:`mmembed.data.post.engagement`), so ``followers * exp(e)`` is really the expected
    *interactions plus one*, ``likes + comments + 1``. Reported as "expected likes", this is an
    approximation that overstates likes by ``comments + 1``, small next to likes for typical
    posts. The exponential of a predicted mean log rate is also a geometric-mean (median-like)
    estimate, below the arithmetic mean of a skewed count. Broadcasts; NaN followers (unknown)
    give NaN; negative followers raise ``ValueError``.
    """
    rate = np.asarray(log_rate, dtype=np.float64)
    f = np.asarray(followers, dtype=np.float64)
    if np.any(f < 0):
        raise ValueError("followers must be >= 0")
    return f * np.exp(rate)


def rank_order(score: ArrayLike) -> np.ndarray:
    """Rank of each candidate, ``1`` = best (highest score), as an int array of the same length.

    Ties keep input order (a stable sort: the earlier candidate gets the better rank); NaN
    scores rank last. ``score[np.argsort(ranks)]`` is the score sorted best first.
    """
    s = np.asarray(score, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"rank_order expects a 1-D array of scores, got shape {s.shape}")
    nan = np.isnan(s)
    order = np.lexsort((np.where(nan, 0.0, -s), nan))  # lexsort is stable; NaN after -inf
    ranks = np.empty(s.size, dtype=np.int64)
    ranks[order] = np.arange(1, s.size + 1)
    return ranks
