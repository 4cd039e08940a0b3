"""Two small statistics several modules share: rank correlation and total variation."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["spearman", "total_variation", "total_variation_of"]


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman's rank correlation of ``a`` and ``b``; NaN when it is undefined (fewer than
    three values, or either side constant)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def total_variation(p: ArrayLike, q: ArrayLike) -> float:
    """``½ Σ |p − q|`` of two distributions on the same support, in [0, 1]."""
    return float(0.5 * np.abs(np.asarray(p, dtype=np.float64)
                              - np.asarray(q, dtype=np.float64)).sum())


def total_variation_of(p: Mapping[Hashable, float], q: Mapping[Hashable, float]) -> float:
    """:func:`total_variation` of two distributions given as ``{outcome: probability}``
    (an outcome missing from one side has probability 0 there)."""
    support = sorted(set(p) | set(q), key=str)
    return total_variation([p.get(k, 0.0) for k in support], [q.get(k, 0.0) for k in support])
