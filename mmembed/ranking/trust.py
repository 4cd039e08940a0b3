"""Trust flags: what a manager must know before believing a photo's numbers.

``unlike_training_data``
    The photo is farther from its nearest training post than nearly every held-out post is
    from its own. Measured in two spaces, because either can miss what the other sees: the
    clustered latent of the image alone, and the image tower's own features (a blank frame or
    a screenshot of text can project to a plausible latent, but not to plausible features).
    The threshold in each space is the ``quantile`` (0.99) of held-out posts' distances to their
    nearest training post (:mod:`mmembed.build.calibrate` says which posts, and why the latent's
    gets a margin), so about 1 % of ordinary photos are flagged, and anything stranger than
    nearly every held-out post always is.
``engagement_unreliable``
    The predicted engagement would extrapolate: the photo is unlike the training data, or
    the prediction lies outside the range the model predicted for its training posts. The
    prediction is then clipped into that range (:func:`clip_engagement`), so no photo gets a
    "179 % ≈ 44,839 likes" that no post ever came near.
``duplicate_of:<file>``
    A near-copy of a better photo in the same set (:mod:`mmembed.ranking.duplicates`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["DUPLICATE", "UNLIKE", "UNRELIABLE", "NearestL2", "Novelty", "TrustSettings",
           "clip_engagement"]

UNLIKE = "unlike_training_data"
UNRELIABLE = "engagement_unreliable"
DUPLICATE = "duplicate_of"


@dataclass
class TrustSettings:
    """How the build calibrates the ranking (``trust.*``).

    lift_neighbours: the nearest posts the local lift reads around a photo.
    novelty_quantile: a photo farther from the training posts than this share of the
        held-out posts is flagged ``unlike_training_data``.
    latent_margin: the latent's threshold is this times its quantile: only the validation
        posts set it (a few dozen in a small corpus, so its 99th percentile is nearly their
        maximum and moves a lot), and the margin keeps that noise from flagging ordinary
        photos: on six bundles (synthetic and Tux Paint, three seeds each) held-out photos
        beyond the plain quantile were 0–2 %, mostly by under 15 %. The tower-feature threshold
        needs none (thousands of posts set it).
    min_reference: a community's audience score needs at least this many of its own
        held-out posts; with fewer, its training posts join the reference (scored with
        themselves left out of their neighbourhoods).
    """

    lift_neighbours: int = 30
    novelty_quantile: float = 0.99
    latent_margin: float = 1.5
    min_reference: int = 20


@dataclass(frozen=True)
class Novelty:
    """Distance thresholds beyond which a photo is unlike the training data.

    ``latent``/``features``: the thresholds on the distance to the nearest training post in
    each space (L2 in the latent, ``1 − cosine`` of the tower features), from
    :meth:`from_held_out`.
    """

    latent: float
    features: float
    quantile: float = 0.99

    @classmethod
    def from_held_out(cls, latent_distance: ArrayLike, feature_distance: ArrayLike,
                      quantile: float = 0.99, latent_margin: float = 1.0) -> Novelty:
        """Thresholds from the held-out posts' nearest-training-post distances (the latent's
        times ``latent_margin``)."""
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
        lat = np.asarray(latent_distance, dtype=np.float64)
        feat = np.asarray(feature_distance, dtype=np.float64)
        if lat.size == 0 or feat.size == 0:
            raise ValueError("need held-out posts to set the novelty thresholds; keep "
                             "datamodule.val_fraction > 0")
        return cls(float(latent_margin * np.quantile(lat, quantile)),
                   float(np.quantile(feat, quantile)), float(quantile))

    def unlike(self, latent_distance: ArrayLike, feature_distance: ArrayLike) -> np.ndarray:
        """``[n]`` bool: farther than the threshold in either space."""
        return ((np.asarray(latent_distance) > self.latent)
                | (np.asarray(feature_distance) > self.features))

    def to_dict(self) -> dict[str, float]:
        return {"latent": self.latent, "features": self.features, "quantile": self.quantile}


class NearestL2:
    """Euclidean distance to the nearest of a fixed set of points (exact, faiss flat)."""

    def __init__(self, reference: ArrayLike):
        import faiss

        ref = np.ascontiguousarray(reference, dtype=np.float32)
        self.index = faiss.IndexFlatL2(ref.shape[1])
        self.index.add(ref)

    def distance(self, queries: ArrayLike) -> np.ndarray:
        d2, _ = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
        return np.sqrt(np.maximum(d2[:, 0], 0.0)).astype(np.float64)


def clip_engagement(predicted: ArrayLike, low: float, high: float,
                    unlike: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(clipped prediction, unreliable)``: predictions clipped into ``[low, high]`` (the
    range predicted for the training posts); unreliable where a clip happened or the photo is
    unlike the training data."""
    pred = np.asarray(predicted, dtype=np.float64)
    clipped = np.clip(pred, low, high)
    return clipped, (clipped != pred) | np.asarray(unlike, dtype=bool)
