"""The build's metrics: clustering quality, stability, and agreement with truth where known."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mmembed.communities.metrics import (
    cluster_metrics,
    profile_tv_error,
    stability,
    truth_metrics,
)
from mmembed.stats import total_variation_of

if TYPE_CHECKING:
    from mmembed.build.embed import Embeddings
    from mmembed.communities.profiles import Community

__all__ = ["measure", "topic_shares"]


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()}


def measure(emb: Embeddings, labels: np.ndarray, q_image: np.ndarray, split: np.ndarray,
            posts, communities: dict[str, Community], truth: dict | None, clusterer,
            seed: int) -> dict[str, Any]:
    """The build's metrics: internal quality, stability, and agreement with truth where known.

    - silhouette, Davies–Bouldin (on the full latents), stability (mean ARI over 3 seeds);
    - ``image_only_agreement``: on held-out (test) posts, the share whose image-only cluster is
      the cluster of their full post;
    - with planted topics: ``nmi``/``ari`` of the clusters, ``image_only_nmi`` on held-out
      photos, and ``profile_tv`` (mean total-variation error of account profiles against the
      planted account mixtures); ``profile_tv_shares``, the same against the topic shares each
      account actually posted (the error of the clustering and soft assignment alone), and
      ``profile_tv_sampling``, those shares against the planted mixtures (the part of
      ``profile_tv`` that comes from an account's finite sample of posts, not from the model).
    """
    metrics: dict[str, Any] = dict(cluster_metrics(emb.latent, labels, seed))
    metrics["stability_ari"] = stability(clusterer, emb.latent, posts)
    held_out = split == "test"
    image_labels = q_image.argmax(axis=1)
    metrics["image_only_agreement"] = float((image_labels[held_out] == labels[held_out]).mean())
    topics = [p.topic for p in posts]
    if all(t is not None for t in topics):
        metrics.update(truth_metrics(labels, topics))
        image_truth = truth_metrics(
            image_labels[held_out], [t for t, h in zip(topics, held_out) if h])
        metrics["image_only_nmi"] = image_truth["nmi"]
        mixtures = (truth or {}).get("account_mixtures")
        if mixtures:
            profiles = {name: c.profile for name, c in communities.items()
                        if c.kind == "account" and name in mixtures}
            tv = profile_tv_error(profiles, mixtures, labels, topics)
            metrics["profile_tv"] = tv["mean"]
            metrics["profile_tv_max"] = tv["max"]
            shares = topic_shares(posts, profiles)
            metrics["profile_tv_shares"] = profile_tv_error(
                profiles, shares, labels, topics)["mean"]
            metrics["profile_tv_sampling"] = float(np.mean([
                total_variation_of(shares[a], mixtures[a]) for a in profiles]))
    return _finite(metrics)


def topic_shares(posts, accounts) -> dict[str, dict[str, float]]:
    """Each account's share of its posts per planted topic (what it actually posted)."""
    counts: dict[str, dict[str, float]] = {a: {} for a in accounts}
    for p in posts:
        if p.account in counts:
            counts[p.account][p.topic] = counts[p.account].get(p.topic, 0.0) + 1.0
    return {a: {t: n / sum(c.values()) for t, n in c.items()} for a, c in counts.items() if c}
