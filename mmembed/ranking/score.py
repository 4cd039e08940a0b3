"""The score: a blend of fit and predicted engagement, and the audience score it gives.

Fit (lower is better, :mod:`mmembed.ranking.divergence` and :mod:`mmembed.ranking.density`)
and predicted engagement (higher is better, log engagement rate) live on unrelated scales, so
both are standardised before they are blended with one weight ``alpha`` (``rank.alpha``)::

    z(x)  = (x - mean_R(x)) / std_R(x)
    score = (1 - alpha) * (-z(fit)) + alpha * z(engagement)

Higher is better; ``alpha = 0`` ranks by fit alone, ``alpha = 1`` by engagement alone. The
statistics come from a **reference** set ``R``: the target community's own held-out posts,
scored exactly as a new photo is (their image alone). A score therefore means the same for one
photo as for a thousand, and the **audience score** is simply its percentile among the
reference posts' scores::

    audience_score(x) = 100 * (#{r in R: score(r) < score(x)} + 1/2 #{... ==}) / |R|

"beats 83 % of this community's own posts" (:func:`audience_score`). Without a reference,
:func:`score` standardises over the candidates themselves (``R`` = the candidate set), the
relative score used where no community is involved.

Helpers for reporting: :func:`rank_order` (1 = best), :func:`percentile_among` and
:func:`expected_likes` (a log rate back to a count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Reference", "audience_score", "expected_likes", "percentile_among", "rank_order",
           "score", "standardize"]

_CONSTANT_RTOL = 1e-10  # std below this times max|x| counts as "constant" (rounding only)


def _finite_1d(x: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} expects a 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"cannot standardise NaN or inf values in {what} (is the fit "
                         "smoothed, eps > 0?)")
    return arr


def standardize(x: ArrayLike, reference: ArrayLike | None = None) -> np.ndarray:
    """z-scores ``(x - mean(R)) / std(R)`` (population std) with ``R = reference``, or
    ``R = x`` (the candidate set) when no reference is given.

    Returns zeros when ``R`` gives nothing to compare: fewer than two values, or values that
    are constant (``std <= 1e-10 * max|R|``, so that rounding noise in equal values is not
    blown up to +-1). Raises ``ValueError`` on NaN/inf (an unsmoothed infinite fit, a missing
    prediction): they would silently turn every score into NaN.

    The sums are exactly rounded (``math.fsum``), so the z-scores do not depend on the order
    of the values: the same photos listed in another order get the very same scores (a plain
    float sum differs in the last bit for most orders).
    """
    arr = _finite_1d(x, "standardize")
    ref = arr if reference is None else _finite_1d(reference, "the reference")
    if ref.size < 2:
        return np.zeros_like(arr)
    centre = math.fsum(ref) / ref.size
    std = math.sqrt(math.fsum((ref - centre) ** 2) / ref.size)
    if std <= _CONSTANT_RTOL * float(np.max(np.abs(ref))) or std == 0.0:
        return np.zeros_like(arr)
    return (arr - centre) / std


@dataclass(frozen=True)
class Reference:
    """The community's own held-out posts, scored as new photos: ``fit`` and ``engagement``
    ``[m]`` each. ``source`` says which posts they are (for the report)."""

    fit: np.ndarray
    engagement: np.ndarray
    source: str = "held-out posts"

    def __post_init__(self) -> None:
        if np.shape(self.fit) != np.shape(self.engagement) or np.ndim(self.fit) != 1:
            raise ValueError("reference fit and engagement must be 1-D arrays of one length")

    def __len__(self) -> int:
        return len(self.fit)

    def scores(self, alpha: float) -> np.ndarray:
        """The reference posts' own scores."""
        return score(self.fit, self.engagement, alpha, self)


def score(fit: ArrayLike, engagement: ArrayLike, alpha: float,
          reference: Reference | None = None) -> np.ndarray:
    """Blend of fit and predicted engagement, one value per candidate; higher is better::

        score = (1 - alpha) * (-z(fit)) + alpha * z(engagement)

    where ``z`` is :func:`standardize` against ``reference`` (the community's held-out posts;
    without one, against the candidates). ``alpha = 0``: pure fit (the lowest divergence scores
    highest); ``alpha = 1``: pure engagement; in between, ``alpha`` is the weight of engagement,
    in standard deviations.

    Args:
        fit: ``[n]`` fit of each candidate to the community (lower is better).
        engagement: ``[n]`` predicted log engagement rate of each candidate (higher is better).
        alpha: weight of engagement, in ``[0, 1]`` (config ``rank.alpha``).
        reference: the statistics' source, or ``None`` for the candidate set.
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
    ref_f = None if reference is None else reference.fit
    ref_e = None if reference is None else reference.engagement
    return (1.0 - alpha) * -standardize(f, ref_f) + alpha * standardize(e, ref_e)


def audience_score(scores: ArrayLike, reference: Reference, alpha: float) -> np.ndarray:
    """0–100: the percentile of each score among the reference posts' scores (same alpha)."""
    return percentile_among(scores, reference.scores(alpha))


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
