"""An optional diversity re-rank (``rank.diversity``): maximal marginal relevance.

Carbonell & Goldstein's MMR picks the list greedily: at each step the photo that maximises

    (1 − λ) · ŝ(x) − λ · max_{y already picked} cos(x, y)

where ``ŝ`` is the score rescaled to [0, 1] over the photos and ``cos`` the cosine similarity
of their image embeddings. ``λ = 0`` keeps the score order; ``λ = 1`` spreads the list over
the embedding regardless of score. In between, a photo very like one already above it steps
down the list unless it scores clearly better.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["display_order", "mmr_order"]


def mmr_order(score: ArrayLike, embedding: ArrayLike, diversity: float) -> np.ndarray:
    """Photo indices in MMR order (best first), ``[n]`` int; ties keep the score order."""
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"rank.diversity must be in [0, 1], got {diversity!r}")
    s = np.asarray(score, dtype=np.float64)
    n = len(s)
    by_score = np.argsort(-s, kind="stable")
    if diversity == 0.0 or n < 2:
        return by_score
    span = s.max() - s.min()
    s_hat = (s - s.min()) / span if span > 0 else np.zeros_like(s)
    x = np.asarray(embedding, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    picked = [int(by_score[0])]
    nearest = sim[picked[0]].copy()  # max similarity to the picked set
    left = np.ones(n, dtype=bool)
    left[picked[0]] = False
    while left.any():
        gain = (1.0 - diversity) * s_hat - diversity * nearest
        gain[~left] = -np.inf
        # argmax over gain, ties broken by the score order
        best = max(np.flatnonzero(left), key=lambda i: (gain[i], s[i], -i))
        picked.append(int(best))
        left[best] = False
        nearest = np.maximum(nearest, sim[best])
    return np.asarray(picked, dtype=np.int64)


def display_order(scores: np.ndarray, z_image: np.ndarray, unlike: np.ndarray,
                  leaders: np.ndarray, diversity: float) -> list[int]:
    """Photo indices best first: clean photos by score (:func:`mmr_order` with
    ``diversity``), then photos unlike the training data, then near-copies of a better photo
    (``leaders[i] != i``), each tier by score."""
    n = len(scores)
    dup = leaders != np.arange(n)
    clean = np.flatnonzero(~dup & ~unlike)
    order = clean[mmr_order(scores[clean], z_image[clean], diversity)]
    rest = [i for tier in (~dup & unlike, dup)
            for i in sorted(np.flatnonzero(tier), key=lambda i: (-scores[i], i))]
    return [int(i) for i in order] + [int(i) for i in rest]
