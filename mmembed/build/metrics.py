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
            seed: int, fit_latent: np.ndarray | None = None) -> dict[str, Any]:
    """The build's metrics: clustering quality, stability, and agreement with truth.

    The clusters and profiles are fitted on every post but the test split; each figure that
    can be measured on both is given for the fitted posts (``*_train``) and for the held-out
    test posts, which entered nothing (the plain name):

    - silhouette, Davies–Bouldin, Calinski–Harabasz (fitted latents); stability (mean ARI over
      3 seeds of the clusterer on the fitted latents);
    - ``image_only_agreement``: the share of held-out posts whose image-only cluster is their
      full post's;
    - with planted topics: ``nmi``/``ari`` of the clusters, ``image_only_nmi``; ``profile_tv``
      (mean total-variation error of account profiles against the planted account mixtures),
      ``profile_tv_shares`` (against the topic shares each account actually posted: the error
      of the clustering and soft assignment alone) and ``profile_tv_sampling`` (those shares
      against the planted mixtures: an account's finite sample of posts, not the model).

    ``fit_latent``: ``emb.latent`` of the fitted posts, if the caller holds them already (else
    taken here, once).
    """
    fitted = split != "test"
    held_out = split == "test"
    fit_posts = [p for p, f in zip(posts, fitted) if f]
    latent = emb.latent[fitted] if fit_latent is None else fit_latent
    metrics: dict[str, Any] = dict(cluster_metrics(latent, labels[fitted], seed))
    metrics["stability_ari"] = stability(clusterer, latent, fit_posts)
    del latent
    image_labels = q_image.argmax(axis=1)
    for suffix, rows in (("_train", fitted), ("", held_out)):
        if rows.any():
            metrics[f"image_only_agreement{suffix}"] = float(
                (image_labels[rows] == labels[rows]).mean())
    topics = [p.topic for p in posts]
    if all(t is not None for t in topics):
        for suffix, rows in (("_train", fitted), ("", held_out)):
            if not rows.any():
                continue
            row_topics = [t for t, r in zip(topics, rows) if r]
            full = truth_metrics(labels[rows], row_topics)
            metrics[f"nmi{suffix}"], metrics[f"ari{suffix}"] = full["nmi"], full["ari"]
            metrics[f"image_only_nmi{suffix}"] = truth_metrics(image_labels[rows],
                                                               row_topics)["nmi"]
        mixtures = (truth or {}).get("account_mixtures")
        if mixtures:
            fit_topics = [p.topic for p in fit_posts]
            profiles = {name: c.profile for name, c in communities.items()
                        if c.kind == "account" and name in mixtures}
            tv = profile_tv_error(profiles, mixtures, labels[fitted], fit_topics)
            metrics["profile_tv"] = tv["mean"]
            metrics["profile_tv_max"] = tv["max"]
            shares = topic_shares(fit_posts, profiles)
            metrics["profile_tv_shares"] = profile_tv_error(
                profiles, shares, labels[fitted], fit_topics)["mean"]
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
