"""What the build measures on its held-out posts so that a ranking can be trusted.

Every number here comes from the posts the model did not train on. The validation split
(held out from training, used only to pick the checkpoint) sets them; the test split is kept
for the evaluation and enters nothing:

- the **temperature** of the soft assignment (:mod:`mmembed.ranking.calibration`), fitted so
  that the image-only ``q`` of a validation post is as confident as it is right about the
  cluster of its full post, with the expected calibration error before and after (measured on
  the test split, which the fit never saw);
- the **bandwidth** of the local lift (:mod:`mmembed.ranking.density`): the median distance
  from a post to its ``lift_neighbours``-th nearest other post;
- the **novelty thresholds** (:class:`mmembed.ranking.trust.Novelty`): the
  ``novelty_quantile`` of the held-out posts' distances to their nearest training post, in the
  image tower's content features (1 − cosine; the training posts' features go into an index of
  their own; every training post's distance to its nearest other one counts as held out, the
  features being frozen) and in the image-only latent (L2; validation posts only, and
  ``latent_margin`` times that quantile, since a few hundred posts set it);
- the **engagement range**: the lowest and highest engagement the model predicts for a
  training post; a photo's prediction outside it would extrapolate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmembed.build.embed import Embeddings, Rows
from mmembed.ranking.calibration import expected_calibration_error, fit_temperature, temper
from mmembed.ranking.density import bandwidth
from mmembed.ranking.trust import NearestL2, Novelty, TrustSettings
from mmembed.search.index import PostIndex

__all__ = ["TrustSettings", "calibrate"]

#: Posts sampled to set the lift's bandwidth (its median needs no more).
BANDWIDTH_SAMPLE = 2000
#: Posts sampled, of the held-out and of the training posts each, for the novelty quantiles.
NOVELTY_SAMPLE = 5000


def _sample(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` when there are at most ``size``, else a sorted sample of ``size`` of them."""
    return rows if rows.size <= size else np.sort(rng.choice(rows, size=size, replace=False))


def _lift_bandwidth(index: PostIndex, z_image: np.ndarray, k: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    n = index.ntotal
    rows = np.sort(rng.choice(n, size=min(n, BANDWIDTH_SAMPLE), replace=False))
    scores, _, found = index.search(z_image[rows], k + 1)
    others = np.stack([s[f != r][:k] for s, f, r in zip(scores, found, rows)])
    return bandwidth(others, min(k, others.shape[1]))


def _nearest_other(index: PostIndex, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each query's best score in ``index`` among the rows other than its own ``rows[i]``."""
    scores, _, found = index.search(queries, 2)
    other = np.where(found[:, 0] == rows, scores[:, 1], scores[:, 0])
    return other.astype(np.float64)


def calibrate(clusterer, emb: Embeddings, labels: np.ndarray, split: np.ndarray,
              fitted: np.ndarray, index: PostIndex, post_ids: list[str],
              settings: TrustSettings, seed: int = 0
              ) -> tuple[dict[str, Any], dict[str, float], PostIndex]:
    """``(calibration, metrics, feature index)`` (see the module docstring).

    ``labels``: every post's full-post cluster; ``fitted``: the rows the clusters, profiles and
    ``index`` were built from (every split but test); ``index``: those posts' image embeddings.
    """
    train, val, test = (split == "train"), (split == "val"), (split == "test")
    if not val.any():  # no validation split: the training posts stand in (optimistic)
        val = train
    log_q_val = clusterer.log_soft_assign(emb.latent_image[val])
    temperature = fit_temperature(log_q_val, labels[val])
    metrics: dict[str, float] = {"calibration_temperature": temperature}
    if test.any():
        log_q_test = clusterer.log_soft_assign(emb.latent_image[test])
        metrics["calibration_ece_before"] = expected_calibration_error(
            temper(log_q_test, 1.0), labels[test])
        metrics["calibration_ece"] = expected_calibration_error(
            temper(log_q_test, temperature), labels[test])

    k = int(settings.lift_neighbours)
    h = _lift_bandwidth(index, Rows(emb.z_image.__getitem__, fitted, emb.z_image.shape[1]), k,
                        seed)

    train_rows = np.flatnonzero(train)
    features = PostIndex.build(emb.feature_rows(train_rows),
                               [post_ids[i] for i in train_rows], use_gpu=False)
    rng = np.random.default_rng(seed)
    held = _sample(np.flatnonzero(val & ~train), NOVELTY_SAMPLE, rng)
    # Frozen tower features owe nothing to training, so each training post's distance to the
    # nearest *other* training post is a held-out distance too: thousands of them give a
    # stable quantile. The latent was trained on those posts, so only held-out posts count.
    loo_rows = _sample(train_rows, NOVELTY_SAMPLE, rng)
    loo = 1.0 - _nearest_other(features, emb.feature_rows(loo_rows)[:],
                               np.searchsorted(train_rows, loo_rows))
    if held.size:
        latent_d = NearestL2(emb.latent_image[train]).distance(emb.latent_image[held])
        feature_d = np.concatenate(
            [1.0 - features.search(emb.feature_rows(held)[:], 1)[0][:, 0].astype(np.float64), loo])
    else:  # leave one out among the training posts (optimistic in the latent)
        sub = emb.latent_image[loo_rows]
        latent_d = np.sort(np.linalg.norm(sub[:, None] - sub[None], axis=-1), axis=1)[:, 1]
        feature_d = loo
    novelty = Novelty.from_held_out(latent_d, feature_d, settings.novelty_quantile,
                                    latent_margin=settings.latent_margin)
    predicted = emb.engagement_pred[train]
    calibration = {
        "temperature": temperature,
        "lift": {"neighbours": k, "bandwidth": h},
        "novelty": novelty.to_dict(),
        "engagement_range": [float(predicted.min()), float(predicted.max())],
        "min_reference": int(settings.min_reference),
    }
    return calibration, metrics, features
