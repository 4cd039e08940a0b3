"""Build the bundle ``index/<name>/`` that ``rank.py`` serves from, from built objects.

:func:`build_bundle` embeds every post (fused and image-only latents, :mod:`.embed`),
optionally refines the encoder (DEC, :mod:`mmembed.models.dec`), clusters the latent space,
names the clusters, profiles the communities, measures the result (:mod:`.metrics`), draws the
pictures, indexes the posts with FAISS and writes it all atomically
(:meth:`mmembed.bundle.Bundle.save`). It takes the trained model, the set-up datamodule, an
unfitted clusterer and the community and search settings; the config it is given is only
recorded in the manifest (``rank.py`` rebuilds the model from it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmembed.build.calibrate import calibrate
from mmembed.build.embed import Embeddings, Rows, embed_posts
from mmembed.build.metrics import measure
from mmembed.bundle import Bundle, BundleContents
from mmembed.communities.cluster import Cluster
from mmembed.communities.naming import cluster_names, cluster_terms
from mmembed.communities.profiles import Community, CommunitySettings, build_communities
from mmembed.progress import QUIET, Progress
from mmembed.ranking.trust import TrustSettings
from mmembed.report.pictures import bundle_pictures
from mmembed.search.index import PostIndex, SearchSettings

log = logging.getLogger(__name__)

__all__ = ["BuildResult", "Embeddings", "TrustSettings", "build_bundle", "embed_posts"]


@dataclass
class BuildResult:
    """What the build wrote: the bundle, its metrics, clusters and communities."""

    bundle: Bundle
    metrics: dict[str, Any]
    clusters: list[Cluster]
    communities: dict[str, Community] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.bundle.path


def typical(latent: np.ndarray, idx: np.ndarray, n: int) -> list[int]:
    """The ``n`` posts among ``idx`` closest to their mean latent (the group's most typical)."""
    if len(idx) == 0:
        return []
    d = np.linalg.norm(latent[idx] - latent[idx].mean(axis=0), axis=1)
    return [int(i) for i in idx[np.argsort(d)[:n]]]


class _PostRows:
    """The bundle's post rows, made one at a time as ``posts.jsonl`` is written (a list of
    them would hold every post's metadata a second time)."""

    def __init__(self, posts, engagement, predicted, labels, split):
        self.posts, self.engagement, self.predicted = posts, engagement, predicted
        self.labels, self.split = labels, split

    def __iter__(self):
        for i, p in enumerate(self.posts):
            row = p.to_dict()
            row.update(engagement=float(self.engagement[i]),
                       engagement_pred=float(self.predicted[i]), cluster=int(self.labels[i]),
                       split=str(self.split[i]))
            yield row


def build_bundle(model, datamodule, clusterer, target: str | Path, *,
                 communities: CommunitySettings | None = None,
                 search: SearchSettings | None = None, trust: TrustSettings | None = None,
                 refine: Any = None, config: dict[str, Any] | None = None, seed: int = 0,
                 feature_cache_dir: str | None = None, progress: Progress = QUIET,
                 wandb_run=None) -> BuildResult:
    """Write the bundle of a trained ``model`` at ``target`` (see the module docstring).

    ``clusterer``: an unfitted clusterer (:mod:`mmembed.communities.clustering`); ``refine``:
    a :class:`~mmembed.models.dec.DECRefinement` or ``None``; ``config``: the resolved config
    to record in the manifest.

    **Held-out posts enter nothing that is fitted or searched.** The clusters, their names,
    the community profiles, the FAISS index (and so every suggestion's neighbours) and the
    calibration are built from the posts outside the test split; the test posts are kept in
    ``posts.jsonl`` and ``latents.npz`` (``split: test``) only so that the evaluation can treat
    them as new photos.
    """
    communities = communities or CommunitySettings()
    search = search or SearchSettings()
    trust = trust or TrustSettings()
    progress.phase("embedding the posts")
    emb = embed_posts(model, datamodule, cache_dir=feature_cache_dir, progress=progress,
                      fused=refine is not None)
    posts, split = datamodule.posts, np.asarray(datamodule.split)
    fitted = np.flatnonzero(split != "test")
    if fitted.size < 2:
        raise ValueError(f"only {fitted.size} post(s) outside the test split: nothing to "
                         "cluster; lower datamodule.test_fraction or add posts")
    fit_posts = [posts[i] for i in fitted]
    progress.phase(f"clustering ({clusterer.name})")
    clusterer.fit(emb.latent[fitted], fit_posts)
    if refine is not None:  # DEC refines the encoder in place: embed again with it
        progress.phase(f"refining the clusters ({refine.name})")
        refine.refine(clusterer, emb.latent[fitted], encoder=model.autoencoder.encoder,
                      inputs=torch.from_numpy(emb.fused[fitted]))
        emb = embed_posts(model, datamodule, cache_dir=feature_cache_dir, progress=progress)
    q = clusterer.soft_assign(emb.latent)
    labels = q.argmax(axis=1)
    labels[fitted] = clusterer.labels_  # the fit's own labels (LDA's come from the words)
    q_image = clusterer.soft_assign(emb.latent_image)
    k = q.shape[1]

    progress.phase("naming the clusters and profiling the communities")
    fit_latent, fit_labels = emb.latent[fitted], labels[fitted]
    terms = cluster_terms(fit_posts, fit_labels, k, top_n=communities.top_terms)
    names = cluster_names(terms, n_terms=communities.name_terms)
    medoids = [fitted[typical(fit_latent, np.flatnonzero(fit_labels == c), communities.medoids)]
               for c in range(k)]
    engagement = np.asarray(datamodule.engagement)
    profiles = build_communities(
        fit_posts, q[fitted], fit_labels, engagement[fitted], names,
        groups=dict(communities.groups), weighting=communities.weighting,
        min_size=communities.min_size, predicted=emb.engagement_pred[fitted])
    metrics = measure(emb, labels, q_image, split, posts, profiles, datamodule.corpus.truth,
                      clusterer, seed, fit_latent=fit_latent)
    metrics["k"] = k
    metrics["method"] = clusterer.name + (f"+{refine.name}" if refine is not None else "")
    del fit_latent  # a copy of most of the latent: not held while the indexes are built

    progress.phase("building the search index and calibrating")
    post_ids = [p.post_id for p in posts]
    index = PostIndex.build(Rows(emb.z_image.__getitem__, fitted, emb.z_image.shape[1]),
                            [post_ids[i] for i in fitted],
                            flat_max=search.flat_max, nlist=search.nlist, nprobe=search.nprobe,
                            use_gpu=search.use_gpu, memory_budget_mb=search.memory_budget_mb,
                            pq_m=search.pq_m, refine=search.refine, k_factor=search.k_factor)
    calibration, calibration_metrics, feature_index = calibrate(
        clusterer, emb, labels, split, fitted, index, post_ids, trust, seed)
    metrics.update(calibration_metrics)
    sizes = np.bincount(fit_labels, minlength=k)
    clusters = [Cluster(id=c, name=names[c], size=int(sizes[c]), top_terms=terms[c],
                        medoids=[post_ids[i] for i in medoids[c]],
                        engagement_mean=(float(engagement[fitted][fit_labels == c].mean())
                                         if sizes[c] else None))
                for c in range(k)]
    rows = _PostRows(posts, engagement, emb.engagement_pred, labels, split)
    row_of = {p.post_id: i for i, p in enumerate(posts)}
    thumbs = {name: [posts[i].image_path for i in typical(
        emb.latent, np.array([row_of[m] for m in c.members], dtype=int), 4)]
        for name, c in profiles.items()}
    progress.phase("drawing the pictures")
    pictures = bundle_pictures(emb.latent[fitted], fit_labels, names, terms,
                               [[row_of[m] for m in c.medoids] for c in clusters], posts,
                               {n: c.to_dict() for n, c in profiles.items()}, seed=seed,
                               community_thumbs=thumbs)
    text_tower = model.text_tower
    contents = BundleContents(
        model=model, clusterer=clusterer, clusters=clusters, communities=profiles, posts=rows,
        # where a photo's latent is its z_image, the bundle stores the array once
        latents={"latent": emb.latent, "z_image": emb.z_image,
                 **({} if emb.latent_image is emb.z_image else {"latent_image": emb.latent_image}),
                 "engagement_pred": emb.engagement_pred, "q": q.astype(np.float32)},
        index=index, pictures=pictures,
        tokenizer_json=(text_tower.tokenizer_json()
                        if text_tower is not None and text_tower.fits_vocabulary else None),
        calibration=calibration, feature_index=feature_index)
    progress.phase("writing the bundle")
    _, params = clusterer.state()
    bundle = Bundle.save(target, contents, config=config or {},
                         data_fingerprint=datamodule.fingerprint, metrics=metrics,
                         extra={"k_curve": params.get("k_curve")})
    progress.phase(None)
    if wandb_run is not None:
        log_build(wandb_run, bundle, metrics)
    return BuildResult(bundle, metrics, clusters, profiles)


def log_build(run, bundle: Bundle, metrics: dict) -> None:
    """Send the build's metrics and pictures to the W&B run."""
    from mmembed.report.wandb import log_pictures_to_wandb

    run.summary.update({f"bundle/{k}": v for k, v in metrics.items() if v is not None})
    pictures = {name: bundle.path / name for name in bundle.manifest["files"]
                if name.startswith(Bundle.PICTURES + "/")}
    log_pictures_to_wandb(run, pictures)
