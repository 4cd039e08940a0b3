"""The blend weight ``alpha``, chosen on the bundle's held-out posts unless it is given.

``score = (1 - alpha) * (-z(fit)) + alpha * z(engagement)`` (:mod:`mmembed.ranking.score`).
How much predicted engagement should weigh depends on the data: where likes follow what a
community posts, it helps; where they follow something else (on Tux Paint and Open Clip Art the
likes are synthetic and follow colourfulness), every bit of weight on it pushes the
community's own posts down. ``rank.alpha=null`` (the default) lets the bundle say which:

For each account community with posts in the validation split, rank *all* validation posts
as caption-less photos (each left out of its own neighbourhood, as the reference posts are) and
score the ranking by NDCG@``k``, a post's relevance being ``member × percentile``: 1 for the
community's own posts, times its real engagement's percentile among the validation posts. The
``alpha`` of :data:`ALPHA_GRID` with the best mean NDCG over those communities is chosen (ties:
the one nearest :data:`FALLBACK_ALPHA`). It is the evaluation's criterion
(:mod:`mmembed.evaluate`) on the validation split, which picked the checkpoint and set the
temperature; the test split stays out.

With no validation post of any account, ``alpha`` is :data:`FALLBACK_ALPHA`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mmembed.ranking.score import Reference, score

__all__ = ["ALPHA_GRID", "FALLBACK_ALPHA", "GIVEN", "ChosenAlpha", "choose_alpha", "ndcg_at_k"]

#: The weights tried.
ALPHA_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0)
#: The weight without held-out posts to choose on (and the tie-breaker): fit leads.
FALLBACK_ALPHA = 0.3
#: The source of an ``alpha`` the user gave (``ranking.json``'s ``settings.alpha_source``).
GIVEN = "rank.alpha"
#: Validation posts ranked at most (a seeded sample of a bigger split).
MAX_CANDIDATES = 1000
#: Account communities judged at most (those with the most validation posts).
MAX_COMMUNITIES = 50


@dataclass(frozen=True)
class ChosenAlpha:
    """``alpha`` and where it came from. ``ndcg``: the mean NDCG@k of each weight tried
    (empty for the fallback); ``posts`` and ``communities``: what it was judged on."""

    alpha: float
    source: str
    ndcg: dict[float, float]
    posts: int = 0
    communities: int = 0


@dataclass(frozen=True)
class Case:
    """One community's ranking of the candidates: ``fit`` and ``engagement`` ``[n]``, its
    ``reference`` and each candidate's ``relevance`` ``[n]``."""

    fit: np.ndarray
    engagement: np.ndarray
    reference: Reference
    relevance: np.ndarray


def ndcg_at_k(scores: np.ndarray, relevance: np.ndarray, k: int) -> float:
    """NDCG@k of ranking by ``scores`` (higher first; tied scores share their gain, as in
    scikit-learn's ``ndcg_score``); NaN if nothing is relevant."""
    from sklearn.metrics import ndcg_score

    rel = np.asarray(relevance, dtype=np.float64)
    if rel.sum() <= 0:
        return math.nan
    return float(ndcg_score(rel[None, :], np.asarray(scores, dtype=np.float64)[None, :], k=k))


def choose_alpha(cases: Iterable[Case], k: int = 10, grid: tuple[float, ...] = ALPHA_GRID,
                 posts: int = 0) -> ChosenAlpha:
    """The weight of ``grid`` whose rankings have the best mean NDCG@``k`` over ``cases``
    (those with a relevant candidate); :data:`FALLBACK_ALPHA` when there is none."""
    cases = [c for c in cases if np.asarray(c.relevance).sum() > 0]
    if not cases:
        return ChosenAlpha(FALLBACK_ALPHA, "the default: no held-out post of an account to "
                           "choose it on", {})
    ndcg = {a: float(np.mean([ndcg_at_k(score(c.fit, c.engagement, a, c.reference),
                                        c.relevance, k) for c in cases])) for a in grid}
    best = max(ndcg.values())
    alpha = min((a for a, v in ndcg.items() if v >= best - 1e-12),
                key=lambda a: (abs(a - FALLBACK_ALPHA), a))
    accounts = f"{len(cases)} account{'' if len(cases) == 1 else 's'}"
    return ChosenAlpha(alpha, f"chosen on {posts} held-out posts of {accounts}, as the weight "
                       f"that put each account's own best-liked posts at the top of the list "
                       f"(top-{k} quality {ndcg[alpha]:.3f} of 1, NDCG@{k}; "
                       f"{ndcg.get(FALLBACK_ALPHA, math.nan):.3f} at {FALLBACK_ALPHA:g})",
                       ndcg, posts, len(cases))
